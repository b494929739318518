"""Poison values: a charger's own schema-valid but unstorable data is answered at the edge,
never with InternalError (issue 13), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import CallErrorReceived, RawCharger, RunningCsms

pytestmark = pytest.mark.postgres

T0 = "2024-03-01T08:00:00Z"
T1 = "2024-03-01T09:00:00Z"
BIG = 2**31
HUGE = 2**63
EARLY = "0001-01-01T00:00:00+14:00"
LATE = "9999-12-31T23:59:59-14:00"
# Integer fields of Charge Point -> Central System requests (OCPP 1.6 §6).
EDGE_VALUE_CODES = ("PropertyConstraintViolation", "TypeConstraintViolation")


def start(tag: str = "TAG", **extra: Any) -> dict[str, Any]:
    return {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": T0, **extra}


def sampled(value: str, *, at: str = T1, unit: str = "Wh") -> list[dict[str, Any]]:
    return [{"timestamp": at, "sampledValue": [{"value": value, "unit": unit}]}]


async def transaction(csms: RunningCsms, tx: int) -> dict[str, Any]:
    async with csms.api() as api:
        response = await api.get(f"/transactions/{tx}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refused(cp: RawCharger, action: str, payload: dict[str, Any]) -> CallErrorReceived:
    with pytest.raises(CallErrorReceived) as caught:
        await cp.call(action, payload)
    assert caught.value.code in EDGE_VALUE_CODES, caught.value
    assert len(caught.value.description) < 400
    return caught.value


async def still_served(cp: RawCharger) -> None:
    assert "currentTime" in await cp.call("Heartbeat", {})


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("Authorize", {"idTag": "TAG\u0000X"}),
        ("StartTransaction", start(tag="T\u0000")),
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available", "info": "a\u0000b"},
        ),
        ("MeterValues", {"connectorId": 1, "meterValue": sampled("12\u00003")}),
        ("DataTransfer", {"vendorId": "v\u0000", "data": "x"}),
    ],
)
async def test_nul_in_a_string_is_refused_at_the_edge(
    csms: RunningCsms, action: str, payload: dict[str, Any]
) -> None:
    """A NUL character in any string gets PropertyConstraintViolation, and the charger stays."""
    async with csms.charger() as cp:
        error = await refused(cp, action, payload)
        assert error.code == "PropertyConstraintViolation"
        assert "NUL" in error.description
        await still_served(cp)


async def test_nul_in_boot_does_not_lock_the_charger_out(csms: RunningCsms) -> None:
    """A BootNotification vendor with NUL is refused clearly; a clean boot then gets in."""
    async with csms.charger(boot=False) as cp:
        await refused(
            cp, "BootNotification", {"chargePointVendor": "V\u0000", "chargePointModel": "M"}
        )
        assert (await cp.boot())["status"] == "Accepted"


@pytest.mark.parametrize("big", [BIG, HUGE, -BIG - 1])
@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"}),
        ("StartTransaction", start(reservationId=0)),
        ("MeterValues", {"connectorId": 0, "meterValue": sampled("1")}),
        ("StartTransaction", start(meterStart=0)),
    ],
)
async def test_integer_beyond_32_bits_is_refused(
    csms: RunningCsms, action: str, payload: dict[str, Any], big: int
) -> None:
    """OCPP integers are 32-bit: a bigger one is a TypeConstraintViolation, never stored."""
    field = "reservationId" if "reservationId" in payload else "connectorId"
    if action == "StartTransaction" and "reservationId" not in payload:
        field = "meterStart"
    async with csms.charger() as cp:
        error = await refused(cp, action, {**payload, field: big})
        assert error.code == "TypeConstraintViolation"
        assert field in error.description
        await still_served(cp)


@pytest.mark.parametrize(
    ("value", "unit"), [("1e400", "Wh"), ("-inf", "Wh"), ("1e30", "kWh"), ("NaN", "Wh")]
)
async def test_unreadable_register_is_kept_but_does_not_count(
    csms: RunningCsms, value: str, unit: str
) -> None:
    """A register of 1e400, -inf, NaN or 1e30 kWh is stored as sent and ignored for energy."""
    async with csms.charger() as cp:
        tx = (await cp.call("StartTransaction", start()))["transactionId"]
        await cp.call(
            "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": sampled("500")}
        )
        assert (
            await cp.call(
                "MeterValues",
                {"connectorId": 1, "transactionId": tx, "meterValue": sampled(value, unit=unit)},
            )
            == {}
        )
        assert (await transaction(csms, tx))["energyWh"] == 500.0
        stopped = {
            "transactionId": tx,
            "meterStop": 900,
            "timestamp": "2024-03-01T10:00:00Z",
            "transactionData": sampled(value, unit=unit, at="2024-03-01T10:00:00Z"),
        }
        assert await cp.call("StopTransaction", stopped) == {}
    body = await transaction(csms, tx)
    assert body["status"] == "completed"
    assert body["energyWh"] == 900.0
    async with csms.api() as api:
        samples = (await api.get(f"/transactions/{tx}/meter-values")).json()["items"]
    assert value in [s["value"] for s in samples]


@pytest.mark.parametrize("when", [EARLY, LATE])
async def test_overflowing_timestamps_are_answered(csms: RunningCsms, when: str) -> None:
    """Timestamps that overflow in UTC are taken as unparsable (time of receipt), answered."""
    async with csms.charger() as cp:
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        assert await cp.call("StatusNotification", {**status, "timestamp": when}) == {}
        tx = (await cp.call("StartTransaction", start(timestamp=when)))["transactionId"]
        meter = {"connectorId": 1, "transactionId": tx, "meterValue": sampled("10", at=when)}
        assert await cp.call("MeterValues", meter) == {}
        stopped = {"transactionId": tx, "meterStop": 20, "timestamp": when}
        assert await cp.call("StopTransaction", stopped) == {}
    assert (await transaction(csms, tx))["status"] == "completed"


@pytest.mark.parametrize(
    "poison",
    [
        {"transactionId": BIG},
        {"transactionId": HUGE},
        {"meterStop": BIG},
        {"meterStop": -HUGE},
        {"idTag": "T\u0000"},
        {"timestamp": LATE},
        {"transactionData": sampled("1e400")},
        {"transactionData": sampled("5\u0000")},
    ],
)
async def test_stop_transaction_always_gets_a_callresult(
    csms: RunningCsms, poison: dict[str, Any]
) -> None:
    """OCPP 1.6 §4.10: a Stop carrying a poison value is answered CALLRESULT and recorded."""
    async with csms.charger() as cp:
        tx = (await cp.call("StartTransaction", start()))["transactionId"]
        stopped = {"transactionId": tx, "meterStop": 700, "timestamp": T1, **poison}
        answer = await cp.call("StopTransaction", stopped)
        assert set(answer) <= {"idTagInfo"}
        await still_served(cp)
    if "transactionId" not in poison:
        body = await transaction(csms, tx)
        assert body["status"] == "completed"


async def test_literal_1e400_in_the_json_text_is_answered(csms: RunningCsms) -> None:
    """A number orjson cannot hold (1e400) is answered with a CALLERROR, not dropped."""
    async with csms.charger() as cp:
        frame = (
            '[2,"big","StatusNotification",'
            '{"connectorId":1e400,"errorCode":"NoError","status":"Available"}]'
        )
        answer = await cp.exchange(frame)
        assert answer[:3] == [4, "big", "TypeConstraintViolation"]
        await still_served(cp)


@pytest.mark.parametrize("depth", [40, 300, 1000])
async def test_deep_nesting_gets_a_callerror_and_keeps_the_connection(
    csms: RunningCsms, depth: int
) -> None:
    """A payload nesting hundreds of levels deep is answered FormationViolation; socket stays."""
    nested = "[" * depth + "]" * depth
    frame = f'[2,"deep","DataTransfer",{{"vendorId":"v","data":"x","extra":{nested}}}]'
    async with csms.charger() as cp:
        answer = await cp.exchange(frame)
        assert answer[:3] == [4, "deep", "FormationViolation"]
        await still_served(cp)
