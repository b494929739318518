"""Bad frames over a real socket: the right CALLERROR, or nothing, and the connection stays."""

from __future__ import annotations

import orjson
import pytest

from tests.support import RunningCsms

STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


async def still_open(cp: object) -> None:
    """The connection still answers a Heartbeat after the bad frame."""
    answer = await cp.exchange([2, "alive", "Heartbeat", {}])  # type: ignore[attr-defined]
    assert answer[:2] == [3, "alive"]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '[5,"1","X",{}]',
        "[2]",
        '[2, 17, "Heartbeat", {}]',
        '{"a": 1}',
        b"\x00\x01binary",
    ],
)
async def test_unanswerable_frames_keep_the_connection(
    csms: RunningCsms, text: str | bytes
) -> None:
    """Non-JSON, binary, unknown types and unreadable ids get no answer; socket stays."""
    async with csms.charger() as cp:
        await cp.send_raw(text)
        # The next answer on the socket is the Heartbeat's: nothing was sent for the bad frame.
        await still_open(cp)


async def test_unknown_action_and_unknown_vendor(csms: RunningCsms) -> None:
    """FooBar is NotImplemented; DataTransfer for an unknown vendor is UnknownVendorId."""
    async with csms.charger() as cp:
        answer = await cp.exchange([2, "f1", "FooBar", {}])
        assert answer[:3] == [4, "f1", "NotImplemented"]
        assert answer[4] == {}
        assert await cp.call("DataTransfer", {"vendorId": "com.acme", "data": "x"}) == {
            "status": "UnknownVendorId"
        }
        await still_open(cp)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({**STATUS, "status": "charging"}, "PropertyConstraintViolation"),
        ({**STATUS, "extra": True}, "FormationViolation"),
        ({"connectorId": 1, "status": "Available"}, "OccurenceConstraintViolation"),
        ({**STATUS, "connectorId": "1"}, "TypeConstraintViolation"),
        ({**STATUS, "errorCode": "Error"}, "PropertyConstraintViolation"),
    ],
)
async def test_schema_violations_get_exact_codes(
    csms: RunningCsms, payload: dict[str, object], code: str
) -> None:
    """Each violation gets its exact 1.6 code and the connection stays open."""
    async with csms.charger() as cp:
        answer = await cp.exchange([2, "s1", "StatusNotification", payload])
        assert answer[:3] == [4, "s1", code]
        assert answer[3]
        await still_open(cp)


async def test_over_long_message_id(csms: RunningCsms) -> None:
    """A 37-character message id gets TypeConstraintViolation echoing the id."""
    async with csms.charger() as cp:
        long_id = "x" * 37
        answer = await cp.exchange([2, long_id, "Heartbeat", {}])
        assert answer[:3] == [4, long_id, "TypeConstraintViolation"]


async def test_not_supported_action(csms: RunningCsms) -> None:
    """A known 1.6 action we do not take from chargers (Reset) is NotSupported."""
    async with csms.charger() as cp:
        answer = await cp.exchange([2, "r1", "Reset", {"type": "Hard"}])
        assert answer[:3] == [4, "r1", "NotSupported"]


async def test_repeated_start_with_same_id_gets_same_answer(csms: RunningCsms) -> None:
    """A CALL resent with the same id is answered identically; one transaction."""
    start = {"connectorId": 1, "idTag": "T16", "meterStart": 0, "timestamp": "2024-01-01T00:00:00Z"}
    async with csms.charger("CP-T16") as cp:
        first = await cp.exchange([2, "same", "StartTransaction", start])
        second = await cp.exchange([2, "same", "StartTransaction", start])
    assert first == second
    async with csms.api() as api:
        listed = (await api.get("/transactions", params={"chargePointId": "CP-T16"})).json()
    assert listed["total"] == 1


async def test_callerror_frames_are_well_formed(csms: RunningCsms) -> None:
    """Every CALLERROR is [4, id, code, description, {}-or-details] with a string description."""
    async with csms.charger() as cp:
        await cp.send_raw(orjson.dumps([2, "e1", "StatusNotification", {}]).decode())
        answer = await cp.recv_frame()
    assert len(answer) == 5
    assert isinstance(answer[3], str)
    assert isinstance(answer[4], dict)


async def test_registered_vendor_handles_data_transfer(csms: RunningCsms) -> None:
    """A DataTransfer for a vendor with a registered handler gets that handler's answer."""
    seen: list[tuple[str, dict[str, object]]] = []

    async def acme(charge_point_id: str, payload: dict[str, object]) -> dict[str, object]:
        seen.append((charge_point_id, payload))
        return {"status": "Accepted", "data": "pong"}

    csms.app.services.vendors["com.acme"] = acme
    async with csms.charger("CP-VENDOR") as cp:
        answer = await cp.call("DataTransfer", {"vendorId": "com.acme", "messageId": "ping"})
    assert answer == {"status": "Accepted", "data": "pong"}
    assert seen == [("CP-VENDOR", {"vendorId": "com.acme", "messageId": "ping"})]
