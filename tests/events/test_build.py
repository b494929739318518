"""Event builders: the hot-path builders give exactly what the validated ones give."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from csms.core import notifications, ocpi, oicp
from csms.core.clock import format_utc
from csms.core.meter import ENERGY_IMPORT_REGISTER, Sample
from csms.core.ocpi import build_session
from csms.core.session import (
    SESSION_MEASURANDS,
    AuthMethod,
    SessionFacts,
    TokenFacts,
    TokenType,
)
from csms.core.tariff_ocpi import (
    PricedSession,
    cost_summary,
    ocpi_charging_periods,
    tariff_from_ocpi,
)
from csms.core.tariffs import price_session
from csms.core.transactions import SessionEnd
from csms.core.usage import Limits, usage_periods
from csms.events import build
from csms.events.envelope import EventType
from csms.events.models_base import format_datetime, to_json_dict, to_utc
from csms.events.models_ocpi import EvseStatusUpdate, Session
from csms.events.models_oicp import EvseStatusRecord
from csms.events.ocpi_json import ocpi_json
from tests.sessions import LOCATION, PARTY, session_facts

T0 = datetime(2024, 1, 1, 10, 7, 0, 123000, tzinfo=UTC)

FACTS = session_facts(T0)


def sampled(minutes: float, measurand: str, value: str, unit: str, phase: str = "") -> Sample:
    return Sample(
        timestamp=T0 + timedelta(minutes=minutes),
        value=value,
        measurand=measurand,
        unit=unit,
        context="Sample.Periodic",
        location="Outlet",
        phase=phase,
        format="Raw",
    )


def register(minutes: float, wh: str) -> Sample:
    return sampled(minutes, ENERGY_IMPORT_REGISTER, wh, "Wh")


CASES = {
    "no register yet": FACTS,
    "register moved": dataclasses.replace(FACTS, latest_register_wh=1_012_345.6),
    "register below start": dataclasses.replace(FACTS, latest_register_wh=999_000.0),
    "with samples": dataclasses.replace(
        FACTS,
        latest_register_wh=1_020_000.0,
        samples=(register(0, "1000000"), register(20, "1010000"), register(45, "1020000")),
    ),
    "rejected tag": dataclasses.replace(FACTS, invalid=True, latest_register_wh=1_000_001.0),
    "local-time start": dataclasses.replace(
        FACTS, start=datetime(2024, 1, 1, 11, 7, tzinfo=timezone(timedelta(hours=1)))
    ),
}


@pytest.mark.parametrize("facts", CASES.values(), ids=CASES.keys())
def test_session_updated_equals_the_validated_session(facts: SessionFacts) -> None:
    """session.updated skips pydantic, yet its data is what the strict model dumps."""
    at = T0 + timedelta(minutes=50, milliseconds=7)
    fast = build.session_updated(facts, at=at)
    checked = build.session(EventType.SESSION_UPDATED, facts, at=at)
    assert fast.type == checked.type == EventType.SESSION_UPDATED.value
    assert fast.data == checked.data
    Session.model_validate(fast.data["ocpi"], by_alias=True, strict=False)


def test_session_updated_data_is_plain_json() -> None:
    """The hot-path Session holds only JSON types (it goes to the outbox as it is)."""
    facts = CASES["with samples"]
    data = ocpi_json(build_session(facts, last_updated=T0))

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, float, bool)

    assert plain(data)


def test_ocpi_json_gives_each_instant_in_utc_whatever_came_first() -> None:
    """The DateTimes' texts are kept by value: an equal instant in another zone, met first,
    still gives the UTC text; a naive DateTime is refused each time; nulls go, nested too."""
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2031, 5, 6, 9, 30, 0, 250000, tzinfo=plus_two)
    utc = local.astimezone(UTC)
    assert ocpi_json({"a": local, "b": [utc, None, {"c": None, "d": Decimal("1.50")}]}) == {
        "a": "2031-05-06T07:30:00.250Z",
        "b": ["2031-05-06T07:30:00.250Z", None, {"d": 1.5}],
    }
    assert ocpi_json(utc) == "2031-05-06T07:30:00.250Z"
    for _ in range(2):
        with pytest.raises(ValueError, match="naive"):
            ocpi_json({"at": datetime(2031, 5, 6, 9, 30)})
    assert ocpi_json([SessionEnd.FORCED, True, 3]) == [SessionEnd.FORCED.value, True, 3]


def test_meter_values_event_has_text_timestamps() -> None:
    """meter.values carries the charger's samples with RFC 3339 UTC timestamps."""
    event = build.meter_values(
        "CP001", connector_id=1, transaction_id=42, samples=[register(1, "1000500")], at=T0
    )
    assert event.data == {
        "connectorId": 1,
        "transactionId": 42,
        "sampledValues": [
            {
                "timestamp": "2024-01-01T10:08:00.123Z",
                "measurand": ENERGY_IMPORT_REGISTER,
                "phase": None,
                "unit": "Wh",
                "value": "1000500",
                "context": "Sample.Periodic",
                "location": "Outlet",
            }
        ],
    }


def test_a_stopped_sessions_events_and_usage_read_only_the_session_measurands() -> None:
    """session.stopped, the CDR (OCPI and OICP) and the priced usage periods are the same
    from a session's samples of SESSION_MEASURANDS alone as from all of them (the Stop group
    reads back only those, csms.store.transactions_bulk.samples_of)."""
    every = []
    for minute, wh in ((5, 1_002_000), (20, 1_010_000), (35, 1_015_000)):
        every += [
            sampled(minute, ENERGY_IMPORT_REGISTER, str(wh), "Wh"),
            sampled(minute, "Power.Active.Import", "7.2", "kW"),
            *(sampled(minute, "Current.Import", "16", "A", p) for p in ("L1", "L2", "L3")),
            sampled(minute, "SoC", str(40 + minute), "Percent"),
            *(sampled(minute, "Voltage", "230", "V", p) for p in ("L1-N", "L2-N", "L3-N")),
            sampled(minute, "Temperature", "31", "Celsius"),
            sampled(minute, "Frequency", "50", ""),
            sampled(minute, "Energy.Active.Export.Register", "0", "Wh"),
        ]
    kept = [s for s in every if s.measurand in SESSION_MEASURANDS]
    assert len(kept) < len(every)
    stop = T0 + timedelta(minutes=40)
    outputs = []
    for samples in (every, kept):
        facts = dataclasses.replace(
            FACTS, id_tag="04A2B3C4", stop=stop, meter_stop_wh=1_016_000, samples=tuple(samples)
        )
        stopped = build.session_stopped(facts, at=stop, end=SessionEnd.CHARGER, stop_reason=None)
        cdr = build.cdr_created(
            facts, party=PARTY, location=LOCATION, at=stop, remark=None, end=SessionEnd.CHARGER
        )
        assert cdr.data["ocpi"] is not None
        assert cdr.data["oicp"] is not None
        usage = usage_periods(
            start=facts.start,
            end=stop,
            meter_start_wh=facts.meter_start_wh,
            meter_stop_wh=facts.meter_stop_wh,
            samples=samples,
            limits=Limits(power_kw=(Decimal(11),), current_a=(Decimal(40),)),
        )
        outputs.append((stopped.data, cdr.data, usage))
    assert outputs[0] == outputs[1]


EVSE_CASES = {
    "charging": ("CP001", 1, "Charging", True, T0),
    "offline": ("CP001", 2, "Available", False, T0),
    "no status": ("CP001", 1, None, True, T0),
    "faulted, local time": (
        "CP001",
        1,
        "Faulted",
        True,
        datetime(2024, 1, 1, 11, 7, 1, 250000, tzinfo=timezone(timedelta(hours=1))),
    ),
    "identity too long for the uid": ("CP-" + "X" * 60, 1, "Preparing", True, T0),
}


@pytest.mark.parametrize("case", EVSE_CASES.values(), ids=EVSE_CASES.keys())
def test_evse_status_equals_the_validated_parts(
    case: tuple[str, int, str | None, bool, datetime],
) -> None:
    """evse.status validates its parts once per EVSE and status, yet its data is what the
    strict models dump for that time, every time."""
    cp, connector, status, online, at = case
    party = PARTY
    expected_ocpi = to_json_dict(
        EvseStatusUpdate.model_validate(
            ocpi.build_evse_status(
                evse_uid=build.evse_uid(cp, connector),
                ocpp_status=status,
                online=online,
                last_updated=at,
            )
        )
    )
    expected_oicp = to_json_dict(
        EvseStatusRecord.model_validate(
            oicp.build_evse_status_record(
                evse_id=build.evse_id(party, cp, connector), ocpp_status=status, online=online
            )
        )
    )
    for later in (at, at + timedelta(seconds=1)):
        event = build.evse_status(
            cp,
            party=party,
            connector_id=connector,
            ocpp_status=status,
            error_code="NoError",
            info=None,
            vendor_error_code=None,
            vendor_error_text=None,
            online=online,
            at=later,
        )
        shifted = format_datetime(to_utc(later))
        assert event.data["ocpi"] == {**expected_ocpi, "last_updated": shifted}
        assert list(event.data["ocpi"]) == list(expected_ocpi)
        assert event.data["oicp"] == expected_oicp
        # The event's parts are its own: changing them changes no later event.
        event.data["ocpi"]["status"] = event.data["oicp"]["EvseStatus"] = "changed"


def test_evse_status_refuses_a_naive_time() -> None:
    """A naive time fails evse.status as the strict model would fail it."""
    with pytest.raises(ValueError, match="naive"):
        build.evse_status(
            "CP001",
            party=PARTY,
            connector_id=1,
            ocpp_status="Available",
            error_code="NoError",
            info=None,
            vendor_error_code=None,
            vendor_error_text=None,
            online=True,
            at=datetime(2024, 1, 1, 10, 0),
        )


def _built_session(
    facts: SessionFacts, *, at: datetime, priced: PricedSession | None
) -> dict[str, Any]:
    """`build_session` as the old builders called it, priced or not."""
    if priced is None:
        return build_session(facts, last_updated=at)
    return build_session(
        facts,
        last_updated=at,
        total_cost=priced.costs.total,
        charging_periods=ocpi_charging_periods(priced.costs),
    )


def _generic_session_updated(
    facts: SessionFacts, *, at: datetime, priced: PricedSession | None
) -> dict[str, Any]:
    """session.updated's data as it was built before `ocpi_json.session_json` (the general
    `ocpi_json` walk of `build_session`): the reference for consumers' bytes."""
    status, reason = notifications.session_status(stopped=False, authorized=not facts.invalid)
    session = _built_session(facts, at=at, priced=priced)
    data: dict[str, Any] = {
        "transactionId": facts.transaction_id,
        "status": status.value,
        "reason": reason,
        "ocpi": ocpi_json(session),
    }
    if priced is not None:
        data["tariffId"] = priced.tariff_id
        data["cost"] = {
            key: float(item) if isinstance(item, Decimal) else item
            for key, item in cost_summary(priced, currency=facts.currency).items()
        }
    return data


_TARIFF = {
    "country_code": "BE",
    "party_id": "BEC",
    "id": "T1",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}],
    "last_updated": "2024-01-01T00:00:00Z",
}


def _priced(facts: SessionFacts, end: datetime) -> PricedSession:
    periods = usage_periods(
        start=facts.start,
        end=end,
        meter_start_wh=facts.meter_start_wh,
        meter_stop_wh=None,
        samples=facts.samples,
        limits=Limits(power_kw=(), current_a=()),
    )
    costs = price_session(tariff_from_ocpi(_TARIFF), periods, end=end, zone=UTC)
    return PricedSession(tariff=_TARIFF, costs=costs)


BYTE_CASES = {
    **CASES,
    "bench-like": session_facts(
        T0, id_tag="BENCH", location_id="CP-0001", invalid=True, latest_register_wh=20.0
    ),
    "eMSP token, reference, meter, own uid": dataclasses.replace(
        FACTS,
        token=TokenFacts("NL", "EMS", "NL-EMS-C12345678-X", TokenType.APP_USER),
        auth_method=AuthMethod.AUTH_REQUEST,
        authorization_reference="REF-1",
        meter_id="M-7",
        evse_uid="EVSE-9",
        latest_register_wh=Decimal("1000123.4"),
    ),
    "identity too long for the uid": dataclasses.replace(
        FACTS, charge_point_id="CP-" + "X" * 60, latest_register_wh=1_000_010
    ),
    "stopped": dataclasses.replace(FACTS, stop=T0 + timedelta(minutes=30), meter_stop_wh=1_004_000),
}
BYTE_TIMES = {
    "UTC": T0 + timedelta(minutes=50, milliseconds=7),
    "whole second": T0.replace(microsecond=0) + timedelta(minutes=50),
    "under a millisecond": T0.replace(microsecond=999) + timedelta(minutes=50),
    "local time": datetime(2024, 1, 1, 12, 0, 1, 5000, tzinfo=timezone(timedelta(hours=2))),
    "year 999": datetime(999, 1, 1, 10, 0, 0, 0, tzinfo=UTC),
}


@pytest.mark.parametrize("facts", BYTE_CASES.values(), ids=BYTE_CASES.keys())
@pytest.mark.parametrize("at", BYTE_TIMES.values(), ids=BYTE_TIMES.keys())
@pytest.mark.parametrize("priced", [False, True], ids=["unpriced", "priced"])
def test_session_updated_is_byte_for_byte_the_generic_form(
    facts: SessionFacts, at: datetime, priced: bool
) -> None:
    """The direct session.updated builder writes the same JSON, key order included, as
    the general `ocpi_json` walk of `build_session` it replaced, twice in a row (its
    caches warm)."""
    cost = _priced(facts, max(at, facts.start)) if priced and at.year > 999 else None
    expected = orjson.dumps(_generic_session_updated(facts, at=at, priced=cost))
    for _ in range(2):
        event = build.session_updated(facts, at=at, priced=cost)
        assert orjson.dumps(event.data) == expected


def _generic_meter_values(samples: list[Sample]) -> dict[str, Any]:
    """meter.values' data as it was built before (each sample's time formatted by id)."""
    times = {id(s.timestamp): format_utc(s.timestamp) for s in samples}
    return {
        "connectorId": 1,
        "transactionId": 42,
        "sampledValues": [
            {
                "timestamp": times[id(s.timestamp)],
                "measurand": s.measurand,
                "phase": s.phase or None,
                "unit": s.unit or None,
                "value": s.value,
                "context": s.context,
                "location": s.location,
            }
            for s in samples
        ],
    }


def test_meter_values_is_byte_for_byte_the_earlier_form() -> None:
    """A MeterValues as bench/node/loadgen.js sends it (four samples sharing a timestamp),
    then two meterValues, phases and a unit left empty: the same JSON as before."""
    at = T0 + timedelta(minutes=3)
    shared = [
        dataclasses.replace(register(0, "1000500"), timestamp=at),
        dataclasses.replace(sampled(0, "Power.Active.Import", "7000", "W"), timestamp=at),
        dataclasses.replace(sampled(0, "Current.Import", "16", "A", "L1"), timestamp=at),
        dataclasses.replace(sampled(0, "Voltage", "230", "", "L1-N"), timestamp=at),
    ]
    for samples in (shared, [*shared, register(4, "1000600"), register(0, "1000500")]):
        event = build.meter_values(
            "CP001", connector_id=1, transaction_id=42, samples=samples, at=at
        )
        assert orjson.dumps(event.data) == orjson.dumps(_generic_meter_values(samples))


def _validated_session_stopped(
    facts: SessionFacts,
    *,
    at: datetime,
    end: SessionEnd,
    stop_reason: str | None,
    priced: PricedSession | None,
) -> dict[str, Any]:
    """session.stopped's data as it was built before (build_session validated by the
    strict Session model, then dumped): the reference for consumers' bytes."""
    session = _built_session(facts, at=at, priced=priced)
    model = Session.model_validate(session)
    status, reason = notifications.session_status(stopped=True, authorized=not facts.invalid)
    if reason is None:
        reason = notifications.stop_reason(stop_reason)
    data: dict[str, Any] = {"transactionId": facts.transaction_id, "status": status.value}
    data["reason"] = reason if end is SessionEnd.CHARGER else end.value
    if end is SessionEnd.CHARGER:
        data["stopReason"] = stop_reason or "Local"
    data["ocpi"] = to_json_dict(model)
    if priced is not None:
        data["tariffId"] = priced.tariff_id
        data["cost"] = {
            key: float(item) if isinstance(item, Decimal) else item
            for key, item in cost_summary(priced, currency=facts.currency).items()
        }
    return data


STOP = T0 + timedelta(minutes=41, seconds=3, milliseconds=250)
STOPPED_CASES = {
    name: dataclasses.replace(facts, stop=STOP, meter_stop_wh=1_016_000)
    for name, facts in BYTE_CASES.items()
    if name not in ("stopped", "register below start")
} | {
    "with samples, local-time stop": dataclasses.replace(
        BYTE_CASES["with samples"],
        stop=datetime(2024, 1, 1, 11, 48, 0, tzinfo=timezone(timedelta(hours=1))),
        meter_stop_wh=1_021_000,
    ),
    "whole-second stop, no energy": dataclasses.replace(
        FACTS, stop=T0.replace(microsecond=0) + timedelta(hours=2), meter_stop_wh=1_000_000
    ),
}
STOP_ENDS = [
    (SessionEnd.CHARGER, reason)
    for reason in (
        None,
        "Local",
        "EVDisconnected",
        "Remote",
        "DeAuthorized",
        "PowerLoss",
        "EmergencyStop",
        "Other",
    )
] + [
    (SessionEnd.FORCED, None),
    (SessionEnd.IMPLICITLY_ENDED, None),
]


@pytest.mark.parametrize("facts", STOPPED_CASES.values(), ids=STOPPED_CASES.keys())
@pytest.mark.parametrize("priced", [False, True], ids=["unpriced", "priced"])
def test_session_stopped_is_byte_for_byte_the_validated_form(
    facts: SessionFacts, priced: bool
) -> None:
    """session.stopped, written directly, is the JSON the strict Session model dumped,
    key order included, for each way a session ends, at UTC and other-zone times, twice in
    a row (its caches warm)."""
    assert facts.stop is not None
    cost = _priced(facts, facts.stop) if priced else None
    times = (facts.stop, datetime(2024, 1, 1, 13, 0, 0, 7000, tzinfo=timezone(timedelta(hours=-3))))
    for at in times:
        for end, reason in STOP_ENDS:
            expected = orjson.dumps(
                _validated_session_stopped(facts, at=at, end=end, stop_reason=reason, priced=cost)
            )
            for _ in range(2):
                event = build.session_stopped(
                    facts, at=at, end=end, stop_reason=reason, priced=cost
                )
                assert event.type == EventType.SESSION_STOPPED.value
                assert orjson.dumps(event.data) == expected


def test_session_stopped_refuses_a_naive_stop() -> None:
    """A naive stop time fails session.stopped as the strict model failed it."""
    facts = dataclasses.replace(FACTS, stop=datetime(2024, 1, 1, 11, 0), meter_stop_wh=1_000_100)
    with pytest.raises(ValueError, match="naive"):
        build.session_stopped(facts, at=T0, end=SessionEnd.CHARGER, stop_reason=None)
