"""OCPP -> OCPI 2.2.1 builders: ids, energy, charging periods, Session and CDR."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from csms.core.meter import ENERGY_IMPORT_REGISTER, Sample
from csms.core.ocpi import (
    MAX_CHARGING_PERIODS,
    CdrDimensionType,
    CdrLocationFacts,
    ConnectorFormat,
    ConnectorType,
    PowerType,
    PriceFacts,
    SessionStatus,
    Status,
    build_cdr,
    build_charging_periods,
    build_evse_status,
    build_session,
    evse_uid_or_derived,
    format_evse_id,
    format_evse_uid,
    hours_between,
    session_energy_kwh,
)
from csms.core.session import AuthMethod, TokenFacts, TokenType
from csms.events.models_ocpi import Cdr, EvseStatusUpdate, Session, to_json_dict
from tests.sessions import session_facts

T0 = datetime(2024, 1, 1, 10, 7, 0, tzinfo=UTC)
NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def sample(
    minutes: float,
    value: str,
    *,
    measurand: str = ENERGY_IMPORT_REGISTER,
    unit: str = "Wh",
    phase: str = "",
    location: str = "Outlet",
    fmt: str = "Raw",
) -> Sample:
    """A sampled value `minutes` after T0, defaults as csms.core.meter applies them."""
    return Sample(
        timestamp=T0 + timedelta(minutes=minutes),
        value=value,
        measurand=measurand,
        unit=unit,
        context="Sample.Periodic",
        location=location,
        phase=phase,
        format=fmt,
    )


FACTS = session_facts(T0)
LOCATION = CdrLocationFacts(
    address="F.Rooseveltlaan 3A",
    city="Gent",
    country="BEL",
    latitude="51.047599",
    longitude="3.729944",
    evse_id="BE*BEC*ECP001*1",
    connector_standard=ConnectorType.IEC_62196_T2,
    connector_format=ConnectorFormat.SOCKET,
    connector_power_type=PowerType.AC_3_PHASE,
    postal_code="9000",
)


def dimensions(period: dict[str, Any]) -> dict[CdrDimensionType, Decimal]:
    return {d["type"]: d["volume"] for d in period["dimensions"]}


# --- ids and status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charge_point_id", "connector_id", "uid"),
    [("CP001", 1, "CP001*1"), ("RDAM-123", 2, "RDAM-123*2"), ("A" * 34, 1, "A" * 34 + "*1")],
)
def test_evse_uid(charge_point_id: str, connector_id: int, uid: str) -> None:
    """One virtual EVSE per connector: uid {chargePointId}*{connectorId}."""
    assert format_evse_uid(charge_point_id, connector_id) == uid


@pytest.mark.parametrize(
    ("charge_point_id", "connector_id"), [("A" * 35, 1), ("été", 1), ("CP001", 0)]
)
def test_evse_uid_refused(charge_point_id: str, connector_id: int) -> None:
    """Too long, not ASCII, or connector 0: no EVSE uid."""
    with pytest.raises(ValueError, match=r"evse uid|not an EVSE"):
        format_evse_uid(charge_point_id, connector_id)


def test_a_long_identity_gets_a_derived_uid_in_locations_and_sessions_alike() -> None:
    """An identity too long for `{id}*{n}` (OCPP allows 48 characters) gets one stable
    36-character uid, the same in its Session as in its Location and statuses."""
    identity = "PHONE-CHARGER-WITH-A-LONG-IDENTITY-48-CHARS-XYZ"
    derived = evse_uid_or_derived(identity, 1)
    assert len(derived) == 36
    assert derived == evse_uid_or_derived(identity, 1) != evse_uid_or_derived(identity, 2)
    assert evse_uid_or_derived("CP001", 1) == "CP001*1"
    built = build_session(
        session_facts(T0, charge_point_id=identity), last_updated=NOW, total_cost=None
    )
    assert Session.model_validate(built).evse_uid == derived


@pytest.mark.parametrize(
    ("country", "party", "identity", "connector", "evse_id"),
    [
        ("BE", "BEC", "041503001", None, "BE*BEC*E041503001"),
        ("de", "ab7", "cp-0001", 2, "DE*AB7*ECP*0001*2"),
        ("NL", "ALF", "__rdam__12__", 1, "NL*ALF*ERDAM*12*1"),
    ],
)
def test_evse_id(
    country: str, party: str, identity: str, connector: int | None, evse_id: str
) -> None:
    """eMI3 EVSE ID CC*PPP*E<identity>[*<connector>], upper case, * as the only separator."""
    assert format_evse_id(country, party, identity=identity, connector_id=connector) == evse_id


@pytest.mark.parametrize(
    ("country", "party", "identity"),
    [("BEL", "BEC", "CP1"), ("BE", "BECX", "CP1"), ("BE", "BEC", "---"), ("BE", "BEC", "A" * 31)],
)
def test_evse_id_refused(country: str, party: str, identity: str) -> None:
    """Bad country or party codes, and identities that make no valid EvseID, are refused."""
    with pytest.raises(ValueError, match=r"country|party|pattern"):
        format_evse_id(country, party, identity=identity)


@pytest.mark.parametrize(
    ("ocpp", "online", "status"),
    [
        ("Available", True, Status.AVAILABLE),
        ("Finishing", True, Status.BLOCKED),
        ("Faulted", True, Status.OUTOFORDER),
        ("Charging", False, Status.UNKNOWN),
        (None, True, Status.UNKNOWN),
    ],
)
def test_evse_status_update(ocpp: str | None, online: bool, status: Status) -> None:
    """The evse.status 'ocpi' object carries the mapped status of docs/events.md and validates."""
    built = build_evse_status(evse_uid="CP001*1", ocpp_status=ocpp, online=online, last_updated=T0)
    assert built == {"evse_uid": "CP001*1", "status": status, "last_updated": T0}
    EvseStatusUpdate.model_validate(built)


# --- energy and time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "kwh"),
    [
        ({}, Decimal("0.0000")),
        ({"latest_register_wh": 1_012_345}, Decimal("12.3450")),
        ({"latest_register_wh": 1_000_000.5}, Decimal("0.0005")),
        ({"latest_register_wh": Decimal("1000123.45")}, Decimal("0.1235")),
        ({"samples": (sample(5, "1000500"), sample(10, "1001500"))}, Decimal("1.5000")),
        ({"samples": (sample(5, "1001.5", unit="kWh"),)}, Decimal("1.5000")),
        (
            {"latest_register_wh": 1_005_000, "meter_stop_wh": 1_007_000, "stop": T0},
            Decimal("7.0000"),
        ),
    ],
)
def test_session_energy(changes: dict[str, Any], kwh: Decimal) -> None:
    """kwh = (register - meterStart)/1000; the register is meterStop once stopped."""
    assert session_energy_kwh(session_facts(T0, **changes)) == kwh


@pytest.mark.parametrize(
    ("duration", "hours"),
    [
        (timedelta(hours=1, minutes=58, seconds=23), Decimal("1.9731")),
        (timedelta(minutes=90), Decimal("1.5000")),
        (timedelta(0), Decimal("0.0000")),
        (timedelta(seconds=1), Decimal("0.0003")),
    ],
)
def test_hours_between(duration: timedelta, hours: Decimal) -> None:
    """Durations in hours, 4 decimals, half up."""
    assert hours_between(T0, T0 + duration) == hours


# --- charging periods -------------------------------------------------------------------------


def test_active_session_without_samples_has_no_periods() -> None:
    """Nothing measured yet: no charging periods."""
    assert build_charging_periods(FACTS) == []


def test_periods_are_aligned_and_add_up() -> None:
    """Periods start at the start and every quarter hour; ENERGY adds up to the session's kwh."""
    stopped = session_facts(
        T0,
        stop=T0 + timedelta(minutes=40),
        meter_stop_wh=1_010_000,
        samples=(sample(5, "1001000"), sample(8, "1002000"), sample(23, "1006000")),
    )
    periods = build_charging_periods(stopped)
    assert [p["start_date_time"] for p in periods] == [
        T0,  # 10:07
        datetime(2024, 1, 1, 10, 15, tzinfo=UTC),
        datetime(2024, 1, 1, 10, 30, tzinfo=UTC),
        datetime(2024, 1, 1, 10, 45, tzinfo=UTC),
    ]
    energies = [dimensions(p)[CdrDimensionType.ENERGY] for p in periods]
    assert energies == [Decimal("2.0000"), Decimal("4.0000"), Decimal("0.0000"), Decimal("4.0000")]
    assert sum(energies) == session_energy_kwh(stopped)
    times = [dimensions(p)[CdrDimensionType.TIME] for p in periods]
    assert times == [Decimal("0.1333"), Decimal("0.2500"), Decimal("0.2500"), Decimal("0.0333")]


def test_a_session_of_years_gets_at_most_a_week_of_periods() -> None:
    """A start from an unset clock (2000) and a stop today: few long periods, same energy."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    stopped = session_facts(
        start,
        stop=datetime(2026, 3, 1, tzinfo=UTC),
        meter_stop_wh=1_010_000,
        samples=(sample(5, "1001000"),),
    )
    periods = build_charging_periods(stopped)
    assert len(periods) <= MAX_CHARGING_PERIODS
    # After the first (from the start to the first aligned boundary), all alike.
    aligned = itertools.pairwise(periods[1:])
    lengths = {b["start_date_time"] - a["start_date_time"] for a, b in aligned}
    assert len(lengths) == 1
    assert lengths.pop() % timedelta(minutes=15) == timedelta(0)
    energies = [dimensions(p)[CdrDimensionType.ENERGY] for p in periods]
    assert sum(energies) == session_energy_kwh(stopped)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        # Power in W -> kW; min, max, and the Session-only average.
        (
            (
                sample(1, "7000", measurand="Power.Active.Import", unit="W"),
                sample(2, "11", measurand="Power.Active.Import", unit="kW"),
            ),
            {
                CdrDimensionType.MAX_POWER: Decimal("11.0000"),
                CdrDimensionType.MIN_POWER: Decimal("7.0000"),
                CdrDimensionType.POWER: Decimal("9.0000"),
            },
        ),
        # Current per phase is summed per timestamp ("sum over all phases").
        (
            tuple(
                sample(m, v, measurand="Current.Import", unit="A", phase=ph)
                for m, v in ((1, "16"), (2, "10"))
                for ph in ("L1", "L2", "L3")
            ),
            {
                CdrDimensionType.MAX_CURRENT: Decimal("48.0000"),
                CdrDimensionType.MIN_CURRENT: Decimal("30.0000"),
                CdrDimensionType.CURRENT: Decimal("39.0000"),
            },
        ),
        # The newest SoC of the period.
        (
            (
                sample(1, "40", measurand="SoC", unit="Percent", location="EV"),
                sample(3, "42", measurand="SoC", unit="Percent", location="EV"),
            ),
            {CdrDimensionType.STATE_OF_CHARGE: Decimal("42.0000")},
        ),
        # Signed, Inlet and per-phase registers are not the EV's total import register.
        (
            (
                sample(1, "1009999", fmt="SignedData"),
                sample(2, "1009999", location="Inlet"),
                sample(3, "1009999", phase="L1"),
                sample(4, "garbage"),
                sample(5, "1000100"),
            ),
            {CdrDimensionType.ENERGY: Decimal("0.1000")},
        ),
    ],
)
def test_period_dimensions(
    samples: tuple[Sample, ...], expected: dict[CdrDimensionType, Decimal]
) -> None:
    """Dimensions from measurands, in OCPI units."""
    (period,) = build_charging_periods(session_facts(T0, samples=samples))
    got = dimensions(period)
    for kind, volume in expected.items():
        assert got[kind] == volume


def test_cdr_periods_drop_session_only_dimensions() -> None:
    """CDR periods have no CURRENT, POWER or STATE_OF_CHARGE."""
    samples = (
        sample(1, "7000", measurand="Power.Active.Import", unit="W"),
        sample(1, "16", measurand="Current.Import", unit="A"),
        sample(1, "50", measurand="SoC", unit="Percent", location="EV"),
    )
    (period,) = build_charging_periods(session_facts(T0, samples=samples), for_cdr=True)
    assert set(dimensions(period)) == {
        CdrDimensionType.ENERGY,
        CdrDimensionType.TIME,
        CdrDimensionType.MAX_POWER,
        CdrDimensionType.MIN_POWER,
        CdrDimensionType.MAX_CURRENT,
        CdrDimensionType.MIN_CURRENT,
    }


# --- Session ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "status", "kwh", "has_end", "periods"),
    [
        ({}, SessionStatus.ACTIVE, Decimal("0.0000"), False, 0),
        ({"samples": (sample(5, "1002500"),)}, SessionStatus.ACTIVE, Decimal("2.5000"), False, 1),
        (
            {
                "samples": (sample(5, "1002500"),),
                "stop": T0 + timedelta(minutes=20),
                "meter_stop_wh": 1_004_000,
            },
            SessionStatus.COMPLETED,
            Decimal("4.0000"),
            True,
            2,
        ),
        ({"invalid": True}, SessionStatus.INVALID, Decimal("0.0000"), False, 0),
    ],
)
def test_session(
    changes: dict[str, Any], status: SessionStatus, kwh: Decimal, has_end: bool, periods: int
) -> None:
    """ACTIVE -> COMPLETED (INVALID when refused), kwh so far, end once stopped; it validates."""
    built = build_session(session_facts(T0, **changes), last_updated=NOW)
    session = Session.model_validate(built)
    assert session.status is status
    assert session.kwh == kwh
    assert (session.end_date_time is not None) == has_end
    assert len(session.charging_periods or []) == periods


def test_session_json() -> None:
    """The emitted JSON: ids, own-card token, UTC Z times, numbers as numbers."""
    built = build_session(session_facts(T0, samples=(sample(5, "1002500"),)), last_updated=NOW)
    assert to_json_dict(Session.model_validate(built)) == {
        "country_code": "BE",
        "party_id": "BEC",
        "id": "42",
        "start_date_time": "2024-01-01T10:07:00Z",
        "kwh": 2.5,
        "cdr_token": {
            "country_code": "BE",
            "party_id": "BEC",
            "uid": "04A2B3C4",
            "type": "RFID",
            "contract_id": "04A2B3C4",
        },
        "auth_method": "WHITELIST",
        "location_id": "LOC1",
        "evse_uid": "CP001*1",
        "connector_id": "1",
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": "2024-01-01T10:07:00Z",
                "dimensions": [
                    {"type": "ENERGY", "volume": 2.5},
                    {"type": "TIME", "volume": 0.0833},
                ],
            }
        ],
        "status": "ACTIVE",
        "last_updated": "2024-01-01T12:00:00Z",
    }


def test_session_with_emsp_token_and_optional_fields() -> None:
    """An eMSP's token, a remote start, authorization reference, meter id and cost."""
    built = build_session(
        session_facts(
            T0,
            token=TokenFacts(
                country_code="NL",
                party_id="TST",
                contract_id="NL-TST-C12345678-S",
                type=TokenType.APP_USER,
            ),
            auth_method=AuthMethod.COMMAND,
            authorization_reference="REF1",
            meter_id="MTR-9",
            evse_uid="LOC1-EVSE-7",
        ),
        last_updated=NOW,
        total_cost=PriceFacts(excl_vat=Decimal("2.5")),
    )
    session = Session.model_validate(built)
    assert session.cdr_token.party_id == "TST"
    assert session.cdr_token.type is TokenType.APP_USER
    assert session.auth_method is AuthMethod.COMMAND
    assert session.evse_uid == "LOC1-EVSE-7"
    assert to_json_dict(session)["total_cost"] == {"excl_vat": 2.5}


# --- CDR --------------------------------------------------------------------------------------

STOPPED = session_facts(
    T0,
    stop=T0 + timedelta(hours=1, minutes=58, seconds=23),
    meter_stop_wh=1_015_342,
    samples=(sample(30, "1005000"), sample(90, "1013000")),
)


def test_cdr() -> None:
    """total_energy in kWh, total_time in hours, periods without Session-only dimensions."""
    built = build_cdr(
        STOPPED,
        cdr_id="CDR-42",
        location=LOCATION,
        total_cost=PriceFacts(excl_vat=Decimal("4.00"), incl_vat=Decimal("4.40")),
        last_updated=NOW,
        remark="EVDisconnected",
    )
    cdr = Cdr.model_validate(built)
    assert cdr.total_energy == Decimal("15.3420")
    assert cdr.total_time == Decimal("1.9731")
    assert cdr.session_id == "42"
    assert cdr.cdr_location.evse_uid == "CP001*1"
    assert cdr.cdr_location.connector_id == "1"
    assert sum(
        dimensions(p.model_dump())[CdrDimensionType.ENERGY] for p in cdr.charging_periods
    ) == Decimal("15.3420")
    dumped = to_json_dict(cdr)
    assert dumped["total_energy"] == 15.342
    assert dumped["total_time"] == 1.9731
    assert dumped["end_date_time"] == "2024-01-01T12:05:23Z"
    assert dumped["total_cost"] == {"excl_vat": 4.0, "incl_vat": 4.4}
    assert dumped["remark"] == "EVDisconnected"
    assert dumped["cdr_location"]["coordinates"] == {
        "latitude": "51.047599",
        "longitude": "3.729944",
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"stop": None, "meter_stop_wh": None},
        {"meter_stop_wh": None},
        {"stop": T0 - timedelta(seconds=1)},
    ],
)
def test_cdr_needs_a_stopped_transaction(changes: dict[str, Any]) -> None:
    """No CDR before the stop, or for a stop before the start."""
    with pytest.raises(ValueError, match="transaction 42"):
        build_cdr(
            dataclasses.replace(STOPPED, **changes),
            cdr_id="CDR-42",
            location=LOCATION,
            total_cost=PriceFacts(excl_vat=Decimal(0)),
            last_updated=NOW,
        )
