"""Boot rules: SecurityError before the first accepted boot, no boot needed after (docs/ocpp.md,
"Errors")."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support import RunningCsms

STATUS = {"connectorId": 0, "errorCode": "NoError", "status": "Available"}


async def test_calls_before_boot_get_security_error(csms: RunningCsms) -> None:
    """A never-accepted charger's StatusNotification gets SecurityError."""
    async with csms.charger("CP-T20", boot=False) as cp:
        answer = await cp.exchange([2, "s1", "StatusNotification", STATUS])
        assert answer[:3] == [4, "s1", "SecurityError"]
        boot = await cp.boot()
        assert boot["status"] == "Accepted"
        assert await cp.call("StatusNotification", STATUS) == {}


async def test_boot_answer_and_stored_identity(csms: RunningCsms) -> None:
    """Boot is Accepted with the configured interval and a UTC 'Z' time; details are stored."""
    payload = {
        "chargePointVendor": "Acme",
        "chargePointModel": "Wallbox 22",
        "chargePointSerialNumber": "SN-1",
        "firmwareVersion": "1.2.3",
        "meterType": "MID",
    }
    async with csms.charger("CP-BOOT", boot=False) as cp:
        answer = await cp.call("BootNotification", payload)
    assert answer["status"] == "Accepted"
    assert answer["interval"] == 300
    sent = datetime.fromisoformat(answer["currentTime"])
    assert answer["currentTime"].endswith("Z")
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 60
    async with csms.api() as api:
        body = (await api.get("/charge-points/CP-BOOT")).json()
    assert (body["vendor"], body["model"], body["serialNumber"], body["firmwareVersion"]) == (
        "Acme",
        "Wallbox 22",
        "SN-1",
        "1.2.3",
    )
    assert body["bootStatus"] == "Accepted"


async def test_accepted_charger_reconnects_without_boot(csms: RunningCsms) -> None:
    """Once accepted, a reconnecting charger is served without a new BootNotification."""
    async with csms.charger("CP-T21"):
        pass
    async with csms.charger("CP-T21", boot=False) as cp:
        assert "currentTime" in await cp.call("Heartbeat", {})
        assert await cp.call("StatusNotification", STATUS) == {}
