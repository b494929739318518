"""Charge point identities in URLs, and the OCPP -> OCPI status mapping."""

from __future__ import annotations

import pytest

from csms.core.identity import identity_from_path
from csms.core.ocpi import ocpi_evse_status


@pytest.mark.parametrize(
    ("path", "identity"),
    [
        ("/ocpp/CP001", "CP001"),
        ("/CP001", "CP001"),
        ("/ocpp/RDAM%20123", None),
        ("/ocpp/RDAM-123?x=1", "RDAM-123"),
        ("/ocpp/%C3%A9t%C3%A9", "été"),
        ("/ocpp/" + "A" * 48, "A" * 48),
    ],
)
def test_identity_accepted(path: str, identity: str | None) -> None:
    """The identity is the percent-decoded last segment (whitespace is refused)."""
    got, problem = identity_from_path(path)
    assert got == identity
    assert (problem is None) == (identity is not None)


@pytest.mark.parametrize(
    ("path", "not_found"),
    [
        ("/ocpp/" + "A" * 49, False),
        ("/ocpp/a%2Fb", False),
        ("/ocpp/..", False),
        ("/ocpp/.", False),
        ("/ocpp/a%00b", False),
        ("/ocpp/a%0Ab", False),
        ("/ocpp/%FF", False),
        ("/ocpp/", False),
        ("/", False),
        ("/a/b/c", True),
        ("/other/CP1", True),
    ],
)
def test_identity_refused(path: str, not_found: bool) -> None:
    """Malformed identities are refused; paths we do not serve are 'not found'."""
    identity, problem = identity_from_path(path)
    assert identity is None
    assert problem is not None
    assert problem.startswith("not found") == not_found


@pytest.mark.parametrize(
    ("ocpp", "online", "ocpi"),
    [
        ("Available", True, "AVAILABLE"),
        ("Preparing", True, "CHARGING"),
        ("Charging", True, "CHARGING"),
        ("SuspendedEV", True, "CHARGING"),
        ("SuspendedEVSE", True, "CHARGING"),
        ("Finishing", True, "BLOCKED"),
        ("Reserved", True, "RESERVED"),
        ("Unavailable", True, "INOPERATIVE"),
        ("Faulted", True, "OUTOFORDER"),
        (None, True, "UNKNOWN"),
        ("Available", False, "UNKNOWN"),
    ],
)
def test_ocpi_status_mapping(ocpp: str | None, online: bool, ocpi: str) -> None:
    """The contract's OCPP -> OCPI table, UNKNOWN when unknown or offline."""
    assert ocpi_evse_status(ocpp, online=online).value == ocpi
