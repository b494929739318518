"""Commands across nodes: a CALL for a charger another node holds goes over the broker.

The node receiving the command (API or MQTT) runs every check of docs/api.md "Commands"
itself and records the command; only the OCPP CALL travels. It is published to the
owner's topic `{prefix}/cluster/{node}/calls`; the owner acknowledges at once on
`{prefix}/cluster/{from}/replies`, makes the CALL on its socket and publishes the outcome
there. Nothing blocks: each command waits on its own future.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.errors import (
    ChargerNotConnected,
    CommandError,
    CommandQueueFull,
    CommandRejected,
    CommandTimeout,
    EventPublishError,
    InvalidAnswer,
    StoreError,
)
from csms.events.mqtt import messages
from csms.events.relay import Publisher
from csms.flows.commands import ChargerLink
from csms.store import cluster

log = structlog.get_logger("csms.cluster")

# How long the owner has to say it got the CALL: a dead owner is a 504 in this time, not
# after the whole call timeout.
ACK_TIMEOUT = 2.0

OwnerLookup = Callable[[str], Awaitable[str | None]]


class RemoteLink:
    """A charger held by another node, as `Commands` sees a connection."""

    calls_queued = 0  # the owner applies its own queue limit and answers 429

    def __init__(self, forwarder: Forwarder, *, node_id: str, charge_point_id: str) -> None:
        self._forwarder = forwarder
        self.node_id = node_id
        self.charge_point_id = charge_point_id

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._forwarder.call(self.node_id, self.charge_point_id, action, payload)


class Forwarder:
    """Sends CALLs to other nodes and runs theirs on this node's connections."""

    def __init__(
        self,
        *,
        url: str,
        topic_prefix: str,
        node_id: str,
        publisher: Publisher,
        chargers: Mapping[str, ChargerLink],
        owner_of: OwnerLookup,
        call_timeout: float,
        queue_size: int,
    ) -> None:
        self._url = url
        self._prefix = topic_prefix
        self.node_id = node_id
        self._publisher = publisher
        self._chargers = chargers
        self._owner_of = owner_of
        self._call_timeout = call_timeout
        self._queue_size = queue_size
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()
        self.closing = False

    def topic(self, node_id: str, kind: str) -> str:
        return f"{self._prefix}/cluster/{node_id}/{kind}"

    async def find(self, charge_point_id: str) -> ChargerLink | None:
        """A link to the charger through the node holding it, or None (not connected).

        Raises:
            StoreError: the registry could not be read.
        """
        return self.link(await self._owner_of(charge_point_id), charge_point_id)

    async def owner_in(self, session: AsyncSession, charge_point_id: str) -> str | None:
        """The node holding the charger per the registry, read in the caller's session
        (`Commands.lookup` reads it with the charger's row)."""
        owner = await cluster.owner_of(session, charge_point_id)
        return None if owner is None else owner.node_id

    def link(self, owner: str | None, charge_point_id: str) -> ChargerLink | None:
        """A link through `owner`; None when no node, or this one, holds the charger."""
        if owner is None or owner == self.node_id:
            return None
        return RemoteLink(self, node_id=owner, charge_point_id=charge_point_id)

    async def run(self) -> None:
        try:
            async for topic, payload in messages(
                self._url, self.topic(self.node_id, "+"), on_subscribed=self.subscribed.set
            ):
                kind = topic.rsplit("/", 1)[-1]
                message = _parse(payload)
                if kind == "replies":
                    self._settle(message)
                elif kind == "calls":
                    task = asyncio.create_task(self._serve(message))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
        finally:
            for task in self._running:
                task.cancel()

    async def call(
        self, node_id: str, charge_point_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Forward a CALL and return the charger's answer, raising what a local call would.

        A charger that had moved on before the CALL reached the node asked is looked up
        once more and followed.
        """
        reply = await self._forward(node_id, charge_point_id, action, payload)
        # Followed only if the CALL was not sent: one the charger may have received on a
        # socket that then closed is a 409, as locally, never sent twice.
        if reply.get("outcome") == "not_connected" and not reply.get("sent"):
            owner = await self._owner_of(charge_point_id)
            if owner is not None and owner not in (node_id, self.node_id):
                reply = await self._forward(owner, charge_point_id, action, payload)
        return _answer(reply, retry_after=math.ceil(self._call_timeout))

    async def _forward(
        self, node_id: str, charge_point_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        call_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        acked = self._acks[call_id] = loop.create_future()
        replied = self._replies[call_id] = loop.create_future()
        message = {
            "id": call_id,
            "from": self.node_id,
            "chargePointId": charge_point_id,
            "action": action,
            "payload": payload,
        }
        try:
            try:
                await self._publisher.publish(
                    self.topic(node_id, "calls"), orjson.dumps(message), retain=False
                )
            except EventPublishError as exc:
                raise CommandTimeout(f"node {node_id} unreachable: {exc}") from exc
            try:
                async with asyncio.timeout(ACK_TIMEOUT):
                    await acked
            except TimeoutError:
                raise CommandTimeout(f"node {node_id} did not take the call") from None
            # The owner runs its queue and call timeout; this bound only guards its death.
            bound = self._call_timeout * (self._queue_size + 1) + ACK_TIMEOUT
            try:
                async with asyncio.timeout(bound):
                    reply: dict[str, Any] = await replied
                    return reply
            except TimeoutError:
                raise CommandTimeout(f"node {node_id} did not answer in time") from None
        finally:
            self._acks.pop(call_id, None)
            self._replies.pop(call_id, None)

    def _settle(self, message: dict[str, Any]) -> None:
        call_id = message.get("id")
        if not isinstance(call_id, str):
            return
        if message.get("outcome") == "accepted":
            ack = self._acks.get(call_id)
            if ack is not None and not ack.done():
                ack.set_result(None)
            return
        ack = self._acks.get(call_id)
        if ack is not None and not ack.done():
            ack.set_result(None)
        replied = self._replies.get(call_id)
        if replied is not None and not replied.done():
            replied.set_result(message)

    async def _serve(self, message: dict[str, Any]) -> None:
        """Run a CALL another node forwarded, on this node's connection."""
        call_id, origin = message.get("id"), message.get("from")
        charge_point_id, action = message.get("chargePointId"), message.get("action")
        payload = message.get("payload")
        if not all(isinstance(v, str) for v in (call_id, origin, charge_point_id, action)):
            log.warning("forwarded_call_dropped", reason="malformed")
            return
        if not isinstance(payload, dict):
            return
        assert isinstance(origin, str)
        assert isinstance(call_id, str)
        assert isinstance(charge_point_id, str)
        assert isinstance(action, str)
        # The acknowledgement goes out while the CALL runs: published first on the one
        # connection, it reaches the broker before the outcome (MQTT 3.1.1 §4.6).
        ack = asyncio.create_task(self._reply(origin, {"id": call_id, "outcome": "accepted"}))
        outcome = await self._run_call(charge_point_id, action, payload)
        await self._reply(origin, {"id": call_id, **outcome})
        await ack

    async def _run_call(
        self, charge_point_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        connection = self._chargers.get(charge_point_id)
        if connection is None or self.closing:
            return {"outcome": "not_connected", "sent": False}
        if connection.calls_queued >= self._queue_size:
            return {"outcome": "queue_full", "queued": connection.calls_queued}
        try:
            response = await connection.call(action, payload)
        except CommandRejected as exc:
            return {
                "outcome": "rejected",
                "errorCode": exc.error_code,
                "description": exc.description,
                "details": exc.details,
            }
        except InvalidAnswer as exc:
            return {
                "outcome": "invalid",
                "errorCode": exc.error_code,
                "description": exc.description,
                "response": exc.response,
            }
        except CommandTimeout as exc:
            return {"outcome": "timeout", "detail": str(exc)}
        except (ChargerNotConnected, StoreError):
            return {"outcome": "not_connected", "sent": True}
        return {"outcome": "ok", "response": response}

    async def _reply(self, node_id: str, message: dict[str, Any]) -> None:
        try:
            await self._publisher.publish(
                self.topic(node_id, "replies"), orjson.dumps(message), retain=False
            )
        except EventPublishError as exc:
            log.warning("forwarded_reply_lost", node_id=node_id, error=str(exc))


def _answer(reply: dict[str, Any], *, retry_after: int) -> dict[str, Any]:
    """The charger's answer from a reply, or the error a local call would raise."""
    outcome = reply.get("outcome")
    if outcome == "ok" and isinstance(reply.get("response"), dict):
        response: dict[str, Any] = reply["response"]
        return response
    error: CommandError
    if outcome == "rejected":
        error = CommandRejected(
            error_code=str(reply.get("errorCode")),
            description=str(reply.get("description", "")),
            details=details if isinstance(details := reply.get("details"), dict) else {},
        )
    elif outcome == "invalid":
        error = InvalidAnswer(
            error_code=str(reply.get("errorCode")),
            description=str(reply.get("description", "")),
            response=reply.get("response"),
        )
    elif outcome == "timeout":
        error = CommandTimeout(str(reply.get("detail") or "no answer in time"))
    elif outcome == "queue_full":
        error = CommandQueueFull(
            f"{reply.get('queued')} commands already waiting", retry_after=retry_after
        )
    else:
        error = ChargerNotConnected("charger is not connected to any node")
    raise error


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
