"""OCPP 1.6 payloads to core messages (convert.py): what the fast paths build is what the
plain constructors build."""

from __future__ import annotations

import inspect
from dataclasses import fields
from datetime import UTC, datetime

from csms.core.meter import Sample
from csms.ocpp16 import convert


def test_the_fast_sample_takes_every_field_of_sample() -> None:
    """convert._sample names exactly Sample's fields, so a new field cannot be left unset."""
    parameters = set(inspect.signature(convert._sample).parameters)
    assert parameters == {field.name for field in fields(Sample)}


def test_samples_equal_what_the_dataclass_builds() -> None:
    """Samples built without Sample.__init__ compare, hash and read as constructed ones."""
    received = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    built = convert.samples(
        [
            {
                "timestamp": "2026-01-02T03:04:00Z",
                "sampledValue": [
                    {"value": "1234"},
                    {"value": "1e400", "unit": "kWh"},
                    {"value": "7.2", "measurand": "Power.Active.Import", "phase": "L1"},
                ],
            }
        ],
        received=received,
    )
    at = datetime(2026, 1, 2, 3, 4, 0, tzinfo=UTC)
    expected = [
        Sample(
            at,
            "1234",
            "Energy.Active.Import.Register",
            "Wh",
            "Sample.Periodic",
            "Outlet",
            "",
            "Raw",
            (),
        ),
        Sample(
            at,
            "1e400",
            "Energy.Active.Import.Register",
            "kWh",
            "Sample.Periodic",
            "Outlet",
            "",
            "Raw",
            ("unreadable_value",),
        ),
        Sample(at, "7.2", "Power.Active.Import", "", "Sample.Periodic", "Outlet", "L1", "Raw", ()),
    ]
    assert built == expected
    assert [hash(sample) for sample in built] == [hash(sample) for sample in expected]
    assert [vars(sample) for sample in built] == [vars(sample) for sample in expected]
