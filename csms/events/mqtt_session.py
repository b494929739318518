"""An MQTT 3.1.1 QoS 2 publisher on a persistent session, with packet ids the caller picks.

The cluster relay (docs/deployment.md, "Exactly once") keeps the sender's side of the
QoS 2 exchange (MQTT 3.1.1 §4.3.3) in PostgreSQL rather than in memory: the packet id
is derived from the outbox row, and "PUBREC received" is committed before the PUBREL
goes out. A node that adopts a partition connects with the partition's client id and
CleanSession 0 (§3.1.2.4), so the broker still holds what the dead node left half-done:
a re-sent PUBLISH with a packet id the broker holds is not delivered again, and a PUBREL
completes a message the broker had stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import structlog

from csms.errors import EventPublishError
from csms.events.mqtt import (
    BrokerAddress,
    _packet,
    _string,
    connect_packet,
    handshake,
    parse_mqtt_url,
)

log = structlog.get_logger("csms.mqtt")


class _Window:
    """The acknowledgements (PUBRECs or PUBCOMPs) one window of packets waits for: one
    future and one timer for the window, not one of each per packet."""

    __slots__ = ("acked", "future", "left", "timer")

    def __init__(self, future: asyncio.Future[set[int]], left: int) -> None:
        self.future = future
        self.left = left
        self.acked: set[int] = set()
        self.timer: asyncio.TimerHandle | None = None

    def count(self, packet_id: int | None) -> None:
        """One packet settled: acknowledged (its id), or not (None)."""
        if packet_id is not None:
            self.acked.add(packet_id)
        self.left -= 1
        if self.left <= 0:
            self.finish()

    def finish(self) -> None:
        """Done, with what was acknowledged so far (all of it, or a lost link's share)."""
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_result(self.acked)


class SessionLink(asyncio.Protocol):
    """One connection: CONNECT without clean session, PUBLISH/PUBREC, PUBREL/PUBCOMP."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, ack_timeout: float, clean: bool = False
    ) -> None:
        self._loop = loop
        self._clean = clean
        self._ack_timeout = ack_timeout
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        # (kind, packet id) -> the window its acknowledgement counts in.
        self._waiting: dict[tuple[int, int], _Window] = {}
        # The CONNACK's return code (§3.2.2.3); session_present is its other half.
        self.connack: asyncio.Future[int] = loop.create_future()
        self.session_present = False
        self.lost = False
        self._ping: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            length, shift, index = 0, 0, 1
            while True:  # §2.2.3: the remaining length
                if index >= len(buffer):
                    return
                byte = buffer[index]
                length |= (byte & 0x7F) << shift
                index += 1
                if not byte & 0x80:
                    break
                shift += 7
            if len(buffer) < index + length:
                return
            kind = buffer[0] >> 4
            body = bytes(buffer[index : index + length])
            del buffer[: index + length]
            self._handle(kind, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._ping is not None:
            self._ping.cancel()
        if not self.connack.done():
            self.connack.set_exception(EventPublishError("connection closed before CONNACK"))
        waiting, self._waiting = self._waiting, {}
        for window in {id(w): w for w in waiting.values()}.values():
            window.finish()  # the packets acknowledged before the loss

    def _handle(self, kind: int, body: bytes) -> None:
        if kind in (5, 7) and len(body) >= 2:  # PUBREC §3.5, PUBCOMP §3.7
            packet_id = int.from_bytes(body[:2], "big")
            window = self._waiting.pop((kind, packet_id), None)
            if window is not None:
                window.count(packet_id)
        elif kind == 2 and len(body) >= 2 and not self.connack.done():  # CONNACK §3.2
            self.session_present = bool(body[0] & 1)
            self.connack.set_result(body[1])

    def send_connect(self, *, client_id: str, keepalive: int, address: BrokerAddress) -> None:
        """CONNECT (§3.1) with CleanSession 0: the broker keeps the QoS 2 state (or 1, to
        discard it)."""
        self._write(
            connect_packet(
                client_id=client_id, keepalive=keepalive, address=address, clean_session=self._clean
            )
        )
        self._ping = self._loop.call_later(keepalive, self._send_ping, keepalive)

    def publish(
        self, packets: Sequence[tuple[int, bytes, bytes, bool, bool]]
    ) -> asyncio.Future[set[int]]:
        """PUBLISH at QoS 2 each (packet id, topic, payload, retain, dup); the future
        completes with the packet ids whose PUBREC came: all of them, or on a lost link
        (or one overdue: the link is aborted) those that came before."""
        window = self._expect(5, [packet[0] for packet in packets])
        for packet_id, topic, payload, retain, dup in packets:
            first = 0x34 | (0x08 if dup else 0) | (0x01 if retain else 0)
            self._write(_packet(first, _string(topic) + packet_id.to_bytes(2, "big"), payload))
        return window

    def release(self, packet_ids: Sequence[int]) -> asyncio.Future[set[int]]:
        """PUBREL (§3.6) each; the future completes with the packet ids whose PUBCOMP
        came (as publish)."""
        window = self._expect(7, packet_ids)
        self._write(b"".join(b"\x62\x02" + p.to_bytes(2, "big") for p in packet_ids))
        return window

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._write(b"\xe0\x00")  # DISCONNECT §3.14: the session stays (CleanSession 0)
            self._flush()
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _expect(self, kind: int, packet_ids: Sequence[int]) -> asyncio.Future[set[int]]:
        window = _Window(self._loop.create_future(), len(packet_ids))
        if self.lost or not packet_ids:
            window.finish()
            return window.future
        waiting = self._waiting
        for packet_id in packet_ids:
            previous = waiting.get((kind, packet_id))
            if previous is not None:
                previous.count(None)  # packet id reused: that one is not acknowledged
            waiting[kind, packet_id] = window
        window.timer = self._loop.call_later(self._ack_timeout, self._overdue, kind, window)
        return window.future

    def _overdue(self, kind: int, window: _Window) -> None:
        if not window.future.done():
            log.warning("mqtt_ack_overdue", kind=kind, missing=window.left)
            self.abort()  # ends every window in flight; the relay reconnects and resumes

    def _send_ping(self, keepalive: int) -> None:
        self._write(b"\xc0\x00")  # PINGREQ §3.12
        self._ping = self._loop.call_later(keepalive, self._send_ping, keepalive)

    def _write(self, data: bytes) -> None:
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(out))


async def open_session(
    url: str,
    *,
    client_id: str,
    timeout: float,  # noqa: ASYNC109 (also the acknowledgement timeout of the link)
    keepalive: int = 30,
) -> SessionLink:
    """Connect with CleanSession 0 as `client_id` (taking the session over, §3.1.4).

    Raises:
        EventPublishError: no connection, or the broker refused it.
    """
    link = SessionLink(asyncio.get_running_loop(), ack_timeout=timeout)
    try:
        await handshake(
            link, parse_mqtt_url(url), client_id=client_id, keepalive=keepalive, timeout=timeout
        )
    except (OSError, TimeoutError) as exc:
        raise EventPublishError(f"no mqtt session for {client_id}: {exc!r}") from exc
    return link


async def discard_session(url: str, *, client_id: str, timeout: float) -> None:  # noqa: ASYNC109
    """End the broker's session of `client_id` and everything unreleased in it: connect
    with CleanSession 1 (§3.1.2.4), which discards it, then DISCONNECT.

    Raises:
        EventPublishError: no connection, or the broker refused it.
    """
    link = SessionLink(asyncio.get_running_loop(), ack_timeout=timeout, clean=True)
    try:
        await handshake(
            link, parse_mqtt_url(url), client_id=client_id, keepalive=30, timeout=timeout
        )
    except (OSError, TimeoutError) as exc:
        raise EventPublishError(f"no mqtt session for {client_id}: {exc!r}") from exc
    link.close()
