"""Reference, the library a newcomer would use: a central system on the `ocpp` package's
`ChargePoint` class (on `websockets`), with the same handlers as csms, storing nothing.

    python bench/servers/ocpp_chargepoint.py --port 9000 [--no-uvloop]
"""

from __future__ import annotations

import argparse
import itertools
import logging
from datetime import UTC, datetime
from typing import Any

from _common import run
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

_transactions = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CentralSystemSide(ChargePoint):  # type: ignore[misc]
    @on(Action.boot_notification)
    def on_boot_notification(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(
            current_time=_now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @on(Action.status_notification)
    def on_status_notification(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.start_transaction)
    def on_start_transaction(self, **_: Any) -> call_result.StartTransaction:
        return call_result.StartTransaction(
            transaction_id=next(_transactions),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )


async def handler(websocket: ServerConnection) -> None:
    assert websocket.request is not None
    identity = websocket.request.path.rstrip("/").rsplit("/", 1)[-1]
    try:
        await CentralSystemSide(identity, websocket).start()
    except ConnectionClosed:
        pass


async def start(args: argparse.Namespace) -> object:
    # The library logs every message at INFO; a production set-up would not.
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    return await serve(
        handler,
        args.host,
        args.port,
        subprotocols=[Subprotocol("ocpp1.6")],
        compression=None,
        backlog=4096,
    )


if __name__ == "__main__":
    run(start, __doc__.splitlines()[0])
