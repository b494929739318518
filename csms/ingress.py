"""Commands over MQTT: `{prefix}/commands/{chargePointId}/{Action}` in, a reply out.

A message `{"correlationId": "...", "payload": {...}}` runs the same path as
`POST /api/v1/charge-points/{id}/commands/{Action}`; the outcome is published to
`{prefix}/replies/{chargePointId}/{correlationId}` with the HTTP status semantics as a
`status` field (200, 404, 409, 422, 429, 502, 504).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import unquote

import orjson
import structlog

from csms.errors import CommandError, CommandQueueFull, EventPublishError, StoreError
from csms.events.envelope import topic_level
from csms.events.mqtt import messages
from csms.events.relay import Publisher
from csms.flows.commands import CommandRunner

log = structlog.get_logger("csms.ingress")

# A correlation id becomes a topic level: no separators, wildcards or control characters.
_CORRELATION_ID = re.compile(r"[^/+#\x00-\x1f\x7f]{1,128}")


class CommandIngress:
    """Subscribes to command topics and answers each message on its reply topic."""

    def __init__(
        self,
        *,
        url: str,
        topic_prefix: str,
        commands: CommandRunner,
        publisher: Publisher,
        shared: bool = False,
    ) -> None:
        self._shared = shared
        self._url = url
        self._prefix = topic_prefix
        self._commands = commands
        self._publisher = publisher
        self._running: set[asyncio.Task[None]] = set()
        # Set while the command subscription is active.
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        topic_filter = f"{self._prefix}/commands/+/+"
        if self._shared:
            # Cluster mode: one node of the group takes each command (a shared
            # subscription, MQTT 5 §4.8.2, which Mosquitto offers to 3.1.1 clients too);
            # it forwards the CALL to the node holding the charger.
            topic_filter = f"$share/{self._prefix}-commands/{topic_filter}"
        try:
            subscription = messages(self._url, topic_filter, on_subscribed=self.subscribed.set)
            async for topic, payload in subscription:
                # Commands to different chargers run side by side, like HTTP requests.
                task = asyncio.create_task(self.handle(topic, payload))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            for task in self._running:
                task.cancel()

    async def handle(self, topic: str, payload: bytes) -> None:
        """Run one command message and publish its reply."""
        levels = topic.split("/")
        charge_point_id, action = unquote(levels[-2]), levels[-1]
        request = _parse(payload)
        correlation_id = request.get("correlationId")
        if not isinstance(correlation_id, str) or not _CORRELATION_ID.fullmatch(correlation_id):
            log.warning("command_message_dropped", topic=topic, reason="no usable correlationId")
            return
        reply = await self._run(charge_point_id, action, request)
        reply_topic = f"{self._prefix}/replies/{topic_level(charge_point_id)}/{correlation_id}"
        try:
            await self._publisher.publish(
                reply_topic, orjson.dumps({"correlationId": correlation_id, **reply}), retain=False
            )
        except EventPublishError as exc:
            log.warning("command_reply_lost", topic=reply_topic, error=str(exc))

    async def _run(
        self, charge_point_id: str, action: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        body = request.get("payload")
        if not isinstance(body, dict):
            return {"status": 422, "detail": "payload must be a JSON object"}
        try:
            result = await self._commands.run(charge_point_id, action, body, requested_by="mqtt")
        except StoreError as exc:
            return {"status": exc.status, "detail": str(exc)}
        except CommandError as exc:
            reply: dict[str, Any] = {"status": exc.status, "detail": str(exc), **exc.fields}
            if isinstance(exc, CommandQueueFull):
                reply["retryAfter"] = exc.retry_after
            return reply
        return {
            "status": 200,
            "action": result.action,
            "chargePointId": result.charge_point_id,
            "response": result.response,
        }


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
