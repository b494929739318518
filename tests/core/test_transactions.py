"""Transaction rules: sanity flags, energy, and meter registers (docs/ocpp.md, "Transactions")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from csms.core.clock import ParsedTime
from csms.core.meter import latest_register, register_wh
from csms.core.transactions import (
    CdrStep,
    SessionEnd,
    StartKey,
    cdr_step,
    ends_on_new_start,
    energy_wh,
    estimated_meter_stop,
    is_own_transaction,
    merge_flags,
    register_at_stop,
    session_end,
    start_flags,
    stop_flags,
)
from csms.core.transactions import TransactionFlag as F
from csms.ocpp16.convert import samples as samples_from_meter_values

T0 = datetime(2024, 1, 1, 10, tzinfo=UTC)
T1 = datetime(2024, 1, 1, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("meter_start", "meter_stop", "started", "stopped", "flags"),
    [
        (100, 200, T0, ParsedTime(T1), []),
        (200, 100, T0, ParsedTime(T1), [F.METER_REGRESSION]),
        (100, 200, T1, ParsedTime(T0), [F.STOP_BEFORE_START]),
        (100, 200, T0, ParsedTime(T1, future=True), [F.FUTURE_STOP]),
        (100, 200, None, ParsedTime(T1, unparsable=True), [F.UNPARSABLE_STOP]),
        (100, 200, None, ParsedTime(T1, unset=True), [F.UNSET_STOP]),
    ],
)
def test_stop_flags(
    meter_start: int,
    meter_stop: int,
    started: datetime | None,
    stopped: ParsedTime,
    flags: list[F],
) -> None:
    """A suspicious stop is flagged, never refused (OCPP 1.6 §4.10)."""
    got = stop_flags(
        meter_start=meter_start, meter_stop=meter_stop, started_at=started, stopped=stopped
    )
    assert got == flags


def test_start_flags() -> None:
    """Future and unparsable start timestamps are flagged."""
    assert start_flags(ParsedTime(T0)) == []
    assert start_flags(ParsedTime(T0, future=True)) == [F.FUTURE_START]
    assert start_flags(ParsedTime(T0, unparsable=True)) == [F.UNPARSABLE_START]
    assert start_flags(ParsedTime(T0, unset=True)) == [F.UNSET_START]


@pytest.mark.parametrize(
    ("meter_start", "meter_stop", "register", "energy"),
    [
        (1000, 4000, None, 3000.0),
        (1000, 4000, 9999.0, 3000.0),
        (1000, None, 2500.0, 1500.0),
        (1000, None, None, None),
        (None, 5000, None, None),
        (5000, 4000, None, -1000.0),
    ],
)
def test_energy(
    meter_start: int | None, meter_stop: int | None, register: float | None, energy: float | None
) -> None:
    """Completed: meterStop - meterStart; active: latest register - meterStart."""
    got = energy_wh(meter_start=meter_start, meter_stop=meter_stop, last_register_wh=register)
    assert got == energy


def test_merge_flags_keeps_order_without_repeats() -> None:
    """Flags accumulate once each."""
    assert merge_flags(["a"], [F.ORPHAN_STOP, F.ORPHAN_STOP]) == ["a", "orphan_stop"]


@pytest.mark.parametrize(
    ("sampled", "wh"),
    [
        ({"value": "1500"}, 1500.0),
        ({"value": "1.5", "unit": "kWh"}, 1500.0),
        ({"value": "1500", "unit": "Wh", "measurand": "Energy.Active.Import.Register"}, 1500.0),
        ({"value": "16", "measurand": "Current.Import", "unit": "A"}, None),
        ({"value": "abc"}, None),
        ({"value": "1500", "format": "SignedData"}, None),
        ({"value": "1500", "unit": "varh"}, None),
    ],
)
def test_register_wh(sampled: dict[str, str], wh: float | None) -> None:
    """The import register is read in Wh from Wh or kWh; anything else is not a register."""
    samples = samples_from_meter_values(
        [{"timestamp": "2024-01-01T10:00:00Z", "sampledValue": [sampled]}], received=T0
    )
    assert register_wh(samples[0]) == wh


def test_sampled_value_defaults() -> None:
    """OCPP 1.6 §7.45 defaults: Sample.Periodic, Raw, Energy.Active.Import.Register, Outlet, Wh."""
    (sample,) = samples_from_meter_values(
        [{"timestamp": "2024-01-01T10:00:00", "sampledValue": [{"value": "7"}]}], received=T0
    )
    assert (sample.context, sample.format, sample.measurand, sample.location, sample.unit) == (
        "Sample.Periodic",
        "Raw",
        "Energy.Active.Import.Register",
        "Outlet",
        "Wh",
    )
    assert sample.timestamp == T0


def test_latest_register_ignores_phases_and_takes_newest() -> None:
    """The session energy comes from the newest phase-less register."""
    samples = samples_from_meter_values(
        [
            {"timestamp": "2024-01-01T10:05:00Z", "sampledValue": [{"value": "300"}]},
            {
                "timestamp": "2024-01-01T10:10:00Z",
                "sampledValue": [{"value": "0.5", "unit": "kWh"}, {"value": "9", "phase": "L1"}],
            },
        ],
        received=T0,
    )
    assert latest_register(samples) == (datetime(2024, 1, 1, 10, 10, tzinfo=UTC), 500.0)


T1 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
T2 = datetime(2024, 1, 1, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("open_started_at", "ends"),
    [(T1, True), (T2, True), (datetime(2024, 1, 1, 12, 0, tzinfo=UTC), False), (None, False)],
)
def test_a_new_start_ends_an_older_open_transaction(
    open_started_at: datetime | None, ends: bool
) -> None:
    """An open transaction that started at or before the new Start ends; a later one stays."""
    key = StartKey(charge_point_id="CP", connector_id=1, id_tag="TAG", timestamp=T2, meter_start=0)
    assert ends_on_new_start(open_started_at=open_started_at, new_start=key) is ends


@pytest.mark.parametrize(("owner", "own"), [("CP-1", True), ("CP-2", False), (None, False)])
def test_a_stop_for_another_chargers_transaction_is_an_orphan(owner: str | None, own: bool) -> None:
    """Only the charger's own transactionId is its own; unknown or foreign ids are orphans."""
    assert is_own_transaction(owner=owner, charge_point_id="CP-1") is own


@pytest.mark.parametrize(
    ("started", "stopped", "charger_stopped", "flags", "step"),
    [
        (T1, T2, True, [], CdrStep.FIRST),
        (T1, T1, True, [], CdrStep.FIRST),
        (T1, T2, False, [], CdrStep.FIRST),  # forced or implicitly ended: an estimate
        (T2, T1, True, [], CdrStep.NONE),  # stopped before it started
        (None, T2, True, [], CdrStep.NONE),  # an orphan stop
        (T1, None, False, [], CdrStep.NONE),  # still open
        (T1, T2, True, ["cdr_created"], CdrStep.NONE),  # one CDR per transaction
        (T1, T2, False, ["cdr_created", "cdr_estimated"], CdrStep.NONE),  # no Stop yet
        (T1, T2, True, ["cdr_created", "cdr_estimated"], CdrStep.CORRECTION),
        (T1, T2, True, ["cdr_created", "cdr_estimated", "cdr_corrected"], CdrStep.NONE),
        (T2, T1, True, ["cdr_created", "cdr_estimated"], CdrStep.NONE),  # nonsense stays out
    ],
)
def test_cdr_step(
    started: datetime | None,
    stopped: datetime | None,
    charger_stopped: bool,
    flags: list[str],
    step: CdrStep,
) -> None:
    """One CDR when a transaction ends; an estimated one is corrected once by the real Stop."""
    got = cdr_step(
        started_at=started, stopped_at=stopped, charger_stopped=charger_stopped, flags=flags
    )
    assert got is step


@pytest.mark.parametrize(
    ("charger_stopped", "flags", "end"),
    [
        (True, [], SessionEnd.CHARGER),
        (True, ["forced_stop"], SessionEnd.CHARGER),
        (False, ["forced_stop"], SessionEnd.FORCED),
        (False, ["implicitly_ended"], SessionEnd.IMPLICITLY_ENDED),
    ],
)
def test_session_end(charger_stopped: bool, flags: list[str], end: SessionEnd) -> None:
    """The charger's own Stop says who ended a session, else what csms decided."""
    assert session_end(charger_stopped=charger_stopped, flags=flags) is end


def test_register_at_stop_ignores_readings_after_the_stop() -> None:
    """The estimate uses the newest total register at or before the stop, in Wh."""
    samples = samples_from_meter_values(
        [
            {
                "timestamp": "2024-01-01T10:10:00Z",
                "sampledValue": [{"value": "1.2345", "unit": "kWh"}],
            },
            {
                "timestamp": "2024-01-01T10:20:00Z",
                "sampledValue": [{"value": "2000", "phase": "L1"}],
            },
            {"timestamp": "2024-01-01T11:00:01Z", "sampledValue": [{"value": "9000"}]},
        ],
        received=T0,
    )
    stop = datetime(2024, 1, 1, 11, 0, tzinfo=UTC)
    assert register_at_stop(samples, stopped_at=stop) == Decimal("1234.5")
    assert register_at_stop(samples, stopped_at=stop.replace(hour=10)) is None


@pytest.mark.parametrize(
    ("register", "meter_stop"),
    [(None, 500), (Decimal("1234.5"), 1235), (Decimal("1234.4"), 1234), (800.0, 800)],
)
def test_estimated_meter_stop(register: Decimal | float | None, meter_stop: int) -> None:
    """The last register rounded to the Wh; with none, no energy: meterStart."""
    assert estimated_meter_stop(meter_start=500, register_wh=register) == meter_stop
