"""MQTT adapter: the embedded amqtt broker, and a QoS 1 publisher that returns on PUBACK.

The only module that imports aiomqtt, paho or amqtt. Their errors are converted here,
at the edge, into `EventPublishError`, `BrokerUnavailable` and `EmbeddedBrokerError` of
`csms/errors.py`.

When nothing listens at ``mqtt.url`` and ``mqtt.embedded`` is true, csms starts an
embedded broker (amqtt) at that address (docs/events.md, "Broker"). Delivery is at least
once (docs/events.md, "Delivery"): the publisher returns only after the broker's PUBACK
(MQTT 3.1.1 §4.3.2, QoS 1), so the outbox marks an event delivered only then and
republishes it otherwise.

The publisher speaks the few MQTT 3.1.1 packets it needs itself, on an asyncio protocol:
every event goes through it, and paho's general client cost more per publish than the
rest of the event path. Subscriptions (commands over MQTT) use aiomqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import typing
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

import aiomqtt
import structlog
from amqtt.broker import Broker
from amqtt.errors import BrokerError

from csms.errors import BrokerUnavailable, EmbeddedBrokerError, EventPublishError
from csms.metrics import Metrics, monotonic

log = structlog.get_logger("csms.mqtt")

DEFAULT_PORT = 1883
PROBE_TIMEOUT = 1.0


# --- addresses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is, from an ``mqtt://[user[:password]@]host[:port]`` URL."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse ``mqtt.url``.

    Raises:
        ValueError: not ``mqtt://`` (TLS, ``mqtts://``, is not supported yet), no host,
            a bad port, or a path or query.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "mqtt":
        raise ValueError(f"mqtt url {url!r} must start with mqtt://")
    if not parts.hostname:
        raise ValueError(f"mqtt url {url!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"mqtt url {url!r} has a path or query")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"mqtt url {url!r} has a bad port") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=DEFAULT_PORT if port is None else port,
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
    )


async def is_listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (within PROBE_TIMEOUT).

    When it does, the probe also says a polite MQTT hello and goodbye (CONNECT, CONNACK,
    DISCONNECT) instead of just hanging up: brokers log a bare TCP close as an error, and
    amqtt 0.12 leaks the socket of a connection that closes before CONNECT.
    """
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            writer.write(_probe_connect_packet())
            await writer.drain()
            await reader.readexactly(4)  # CONNACK (MQTT 3.1.1 §3.2), whatever it says
            writer.write(b"\xe0\x00")  # DISCONNECT (§3.14)
            await writer.drain()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        pass  # not MQTT, or not talking: it listens all the same
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _probe_connect_packet() -> bytes:
    """An MQTT 3.1.1 CONNECT (§3.1): clean session, keep-alive 10 s, a random client id."""
    return connect_packet(client_id=f"csms-probe-{uuid.uuid4().hex[:12]}", keepalive=10)


# --- embedded broker -------------------------------------------------------------------------


class EmbeddedBroker:
    """A handle on the in-process amqtt broker."""

    def __init__(self, broker: Any, *, host: str, port: int) -> None:
        self._broker = broker
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The ``mqtt://`` URL the broker listens at."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    async def stop(self) -> None:
        """Disconnect its clients and stop listening; retained messages are dropped."""
        await self._broker.shutdown()
        log.info("embedded_broker_stopped", host=self.host, port=self.port)


async def start_embedded_broker(host: str, port: int) -> EmbeddedBroker:
    """Start an amqtt broker in this process, listening on host:port (TCP, MQTT 3.1.1).

    Anonymous clients are allowed and nothing else is configured: no $SYS topics and
    no packet logging.

    Raises:
        EmbeddedBrokerError: it could not start, e.g. the port is taken.
    """
    # amqtt splits the bind address at the last ":", so IPv6 hosts go in bare.
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }
    try:
        broker = Broker(config)
        await broker.start()
    except BrokerError as exc:
        raise EmbeddedBrokerError(f"embedded broker cannot listen on {host}:{port}") from exc
    log.info("embedded_broker_started", host=host, port=port)
    return EmbeddedBroker(broker, host=host, port=port)


async def ensure_broker(url: str, *, embedded: bool) -> EmbeddedBroker | None:
    """Start the embedded broker at ``url`` if nothing listens there and ``embedded`` is set.

    Returns:
        The embedded broker, to be stopped at shutdown; None when something already
        listens at the address, or nothing does and ``embedded`` is false (the publisher
        then keeps retrying to connect).

    Raises:
        ValueError: the URL is not an ``mqtt://`` URL.
        EmbeddedBrokerError: the embedded broker could not start.
    """
    address = parse_mqtt_url(url)
    if await is_listening(address.host, address.port):
        return None
    if not embedded:
        log.warning("mqtt_broker_not_listening", host=address.host, port=address.port)
        return None
    return await start_embedded_broker(address.host, address.port)


# --- publisher -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential reconnect delays with jitter: retry n waits between d/2 and d.

    d = initial * factor ** (n - 1), capped at ``maximum``.

    "Equal jitter" keeps the delays growing while spreading many csms nodes apart after
    a broker restart.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, *, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1 for the first retry)."""
        ceiling = min(self.maximum, self.initial * self.factor ** max(attempt - 1, 0))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class _Protocol(asyncio.Protocol):
    """One MQTT 3.1.1 connection of the publisher: CONNECT/CONNACK, PUBLISH/PUBACK, PING.

    A publisher needs only these packets, and a few lines of framing cost far less per
    event than paho's general client (a Condition, a message object and a lock per
    publish). Frames written in one loop iteration go out in one write.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        ack_timeout: float,
        acked: Callable[[float], None] | None = None,
    ) -> None:
        self._loop = loop
        self._ack_timeout = ack_timeout
        # Given the seconds from each PUBLISH to its PUBACK (the publish-time histogram).
        self._acked = acked
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        # Waiting for their PUBACK, oldest first: (future, deadline, sent at (monotonic)).
        self._acks: dict[int, tuple[asyncio.Future[None], float, float]] = {}
        self._watch: asyncio.TimerHandle | None = None
        self._failure: str | None = None
        self._next_id = 0
        self.connack: asyncio.Future[int] = loop.create_future()
        self.lost = False
        self._ping: asyncio.TimerHandle | None = None
        self._pong_due = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio's classes.
        self._transport = cast(asyncio.Transport, transport)
        self._watch = self._loop.call_later(self._ack_timeout / 4, self._check_acks)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if buffer[:2] == b"\x40\x02":
            self._pubacks(buffer)
        while len(buffer) >= 2:
            # MQTT 3.1.1 §2.2.3: the remaining length, 1 to 4 bytes of 7 bits each.
            length = 0
            shift = 0
            index = 1
            while True:
                if index >= len(buffer):
                    return
                byte = buffer[index]
                length |= (byte & 0x7F) << shift
                index += 1
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    self._fail("malformed remaining length from the broker")
                    return
            if len(buffer) < index + length:
                return
            kind = buffer[0] >> 4
            body = bytes(buffer[index : index + length])
            del buffer[: index + length]
            self._handle(kind, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for timer in (self._ping, self._watch):
            if timer is not None:
                timer.cancel()
        reason = self._failure or "connection lost before PUBACK"
        if not self.connack.done():
            self.connack.set_exception(EventPublishError("connection closed before CONNACK"))
        acks, self._acks = self._acks, {}
        for future, _, _ in acks.values():
            if not future.done():
                future.set_exception(EventPublishError(reason))

    # -- packets ---------------------------------------------------------------------------------

    def _pubacks(self, buffer: bytearray) -> None:
        """The PUBACKs at the head of the buffer, taken in one pass: under load the broker
        sends them back to back (the relay has thousands of publishes out), 4 bytes each
        (§3.4: 0x40, remaining length 2, the packet identifier)."""
        end = 0
        size = len(buffer)
        while end + 4 <= size and buffer[end] == 0x40 and buffer[end + 1] == 2:
            self._puback((buffer[end + 2] << 8) | buffer[end + 3])
            end += 4
        del buffer[:end]

    def _puback(self, packet_id: int) -> None:
        waiting = self._acks.pop(packet_id, None)
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(None)
            if self._acked is not None:
                self._acked(monotonic() - waiting[2])

    def _handle(self, kind: int, body: bytes) -> None:
        if kind == 4 and len(body) >= 2:  # PUBACK (§3.4)
            self._puback(int.from_bytes(body[:2], "big"))
        elif kind == 13:  # PINGRESP (§3.13)
            self._pong_due = False
        elif kind == 2 and len(body) >= 2:  # CONNACK (§3.2)
            if not self.connack.done():
                self.connack.set_result(body[1])

    def send_connect(self, *, client_id: str, keepalive: int, address: BrokerAddress) -> None:
        """CONNECT (§3.1): clean session, and the credentials when the URL has them."""
        self._write(connect_packet(client_id=client_id, keepalive=keepalive, address=address))
        if keepalive:
            self._ping = self._loop.call_later(keepalive, self._send_ping, keepalive)

    def publish(self, topic: bytes, payload: bytes, *, retain: bool) -> asyncio.Future[None]:
        """Send a PUBLISH at QoS 1 (§3.3); the future completes on its PUBACK."""
        packet_id = self._packet_id()
        future: asyncio.Future[None] = self._loop.create_future()
        self._acks[packet_id] = (future, self._loop.time() + self._ack_timeout, monotonic())
        first = 0x33 if retain else 0x32  # PUBLISH, QoS 1
        self._write(_packet(first, _string(topic) + packet_id.to_bytes(2, "big"), payload))
        return future

    def disconnect(self) -> None:
        """DISCONNECT (§3.14), then close."""
        if self._transport is not None and not self._transport.is_closing():
            self._write(b"\xe0\x00")
            self._flush()
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _packet_id(self) -> int:
        # §2.3.1: non-zero, and not one still waiting for its PUBACK.
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._acks:
                return self._next_id
        raise EventPublishError("65535 publishes wait for their PUBACK")

    def _check_acks(self) -> None:
        # One timer per connection rather than one per publish: the oldest unacknowledged
        # publish is the first in `_acks`.
        if self._acks:
            _, deadline, _ = next(iter(self._acks.values()))
            if deadline < self._loop.time():
                self._fail(f"no PUBACK within {self._ack_timeout:g} s")
                return
        self._watch = self._loop.call_later(self._ack_timeout / 4, self._check_acks)

    def _send_ping(self, keepalive: int) -> None:
        if self._pong_due:
            # §3.1.2.10: no answer within a keep-alive period; the connection is dead.
            self._fail("no PINGRESP from the broker")
            return
        self._pong_due = True
        self._write(b"\xc0\x00")  # PINGREQ (§3.12)
        self._ping = self._loop.call_later(keepalive, self._send_ping, keepalive)

    def _fail(self, reason: str) -> None:
        log.warning("mqtt_connection_dropped", reason=reason)
        self._failure = reason
        self.abort()

    def _write(self, data: bytes) -> None:
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(out))


def _string(data: bytes) -> bytes:
    """A UTF-8 encoded string (§1.5.3): two bytes of length, then the bytes."""
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, variable: bytes, payload: bytes = b"") -> bytes:
    """A control packet (§2.2): the first byte, the remaining length, the rest."""
    length = len(variable) + len(payload)
    encoded = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            encoded.append(byte | 0x80)
        else:
            encoded.append(byte)
            break
    return b"".join((bytes([first]), encoded, variable, payload))


def connect_packet(
    *,
    client_id: str,
    keepalive: int,
    address: BrokerAddress | None = None,
    clean_session: bool = True,
) -> bytes:
    """CONNECT (§3.1), with the credentials of `address` when it has them. CleanSession 0
    (§3.1.2.4) keeps the session's QoS 2 state at the broker across connections."""
    flags = 0x02 if clean_session else 0x00
    payload = _string(client_id.encode())
    if address is not None and address.username is not None:
        flags |= 0x80
        payload += _string(address.username.encode())
        if address.password is not None:
            flags |= 0x40
            payload += _string(address.password.encode())
    header = b"\x00\x04MQTT\x04" + bytes([flags]) + keepalive.to_bytes(2, "big")
    return _packet(0x10, header + payload)


class Link(typing.Protocol):
    """What `handshake` needs of a connection's protocol."""

    @property
    def connack(self) -> asyncio.Future[int]: ...

    def send_connect(self, *, client_id: str, keepalive: int, address: BrokerAddress) -> None: ...

    def abort(self) -> None: ...


async def handshake(
    link: Link,
    address: BrokerAddress,
    *,
    client_id: str,
    keepalive: int,
    timeout: float,  # noqa: ASYNC109 (the protocol's own acknowledgement timeout too)
) -> None:
    """Connect `link` to the broker and wait for an accepting CONNACK; the link is
    aborted on any failure.

    Raises:
        OSError, TimeoutError: no connection, or no CONNACK within `timeout`.
        EventPublishError: the broker refused (§3.2.2.3: 1-5, protocol, identifier,
            unavailable, credentials, authorisation).
    """
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: cast(asyncio.Protocol, link), address.host, address.port
            )
            link.send_connect(client_id=client_id, keepalive=keepalive, address=address)
            code = await link.connack
    except BaseException:
        link.abort()
        raise
    if code != 0:
        link.abort()
        raise EventPublishError(f"broker refused the connection (CONNACK code {code})")


class Publisher:
    """Publishes to one broker at QoS 1 and returns only after the broker's PUBACK.

    Connects on first use (or ``connect()``), retrying with Backoff; a failed publish
    drops the connection and the next one reconnects. Safe to share between tasks:
    publishes from many tasks are in flight together on the one connection, and go out
    in the order they were called (MQTT 3.1.1 §4.6 keeps that order at the broker).
    Use it as ``async with Publisher(url) as publisher:`` or call ``close()``.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        keepalive: int = 60,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Configure; nothing connects until ``connect()`` or the first publish.

        Args:
            url: ``mqtt.url``.
            client_id: the MQTT client identifier; a random ``csms-...`` one by default.
            keepalive: MQTT keep-alive, seconds.
            timeout: seconds to wait for CONNACK, and for each PUBACK.
            backoff: reconnect delays.
            rng: the jitter source; seed one for reproducible delays.
            metrics: where PUBLISH-to-PUBACK times are recorded.
        """
        self._publish_seconds = (metrics or Metrics()).mqtt_publish_seconds
        self._address = parse_mqtt_url(url)
        self._client_id = client_id or f"csms-{uuid.uuid4().hex[:16]}"
        self._keepalive = keepalive
        self._timeout = timeout
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._client: _Protocol | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def connected(self) -> bool:
        """Whether a connection is open (it may still turn out to be dead)."""
        return self._client is not None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self, *, attempts: int | None = None) -> None:
        """Connect unless connected, retrying with backoff and jitter.

        Args:
            attempts: give up after this many tries; None retries until cancelled.

        Raises:
            BrokerUnavailable: ``attempts`` tries failed, or the publisher is closed.
        """
        await self._ensure_client(attempts=attempts)

    async def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Publish at QoS 1; return once the broker has acknowledged it (PUBACK).

        Connects first if needed, waiting through broker outages. If the connection
        turns out to be gone before the message went out, reconnects and sends once
        more; any other failure is raised, and the message may or may not have
        reached the broker (at least once: the caller publishes it again).

        Raises:
            EventPublishError: no PUBACK within ``timeout``, or the connection failed.
            BrokerUnavailable: the publisher is closed.
            ValueError: the topic is not a valid topic name (e.g. has a wildcard).
        """
        # MQTT 3.1.1 §4.7.3: a topic name is non-empty and has no wildcards (or NUL).
        if not topic or "+" in topic or "#" in topic or "\x00" in topic:
            raise ValueError(f"{topic!r} is not a valid MQTT topic name")
        name = topic.encode()
        client = self._client
        if client is None or client.lost:
            if client is not None:
                # Not connected: nothing was sent, so sending again cannot duplicate.
                log.info("mqtt_connection_lost", host=self._address.host, port=self._address.port)
                self._drop(client)
            client = await self._ensure_client(attempts=None)
        try:
            # The connection fails every publish still waiting after `timeout` seconds.
            await client.publish(name, payload, retain=retain)
        except EventPublishError as exc:
            self._drop(client)
            raise EventPublishError(f"publish to {topic} not acknowledged: {exc}") from exc

    def publish_nowait(
        self, topic: str, payload: bytes, *, retain: bool
    ) -> asyncio.Future[None] | None:
        """Send at QoS 1 on the open connection now; the future completes on the PUBACK.

        For a caller with many events (the relay): no task per publish. Publishes go out
        in call order. The future fails with EventPublishError when the connection is
        lost or the PUBACK is overdue; None means not connected: use ``publish()``.

        Raises:
            ValueError: the topic is not a valid topic name (e.g. has a wildcard).
        """
        if not topic or "+" in topic or "#" in topic or "\x00" in topic:
            raise ValueError(f"{topic!r} is not a valid MQTT topic name")
        client = self._client
        if client is None or client.lost or self._closed:
            return None
        return client.publish(topic.encode(), payload, retain=retain)

    async def close(self) -> None:
        """Disconnect; later calls raise BrokerUnavailable."""
        self._closed = True
        async with self._lock:
            if self._client is not None:
                self._client.disconnect()
                self._client = None

    async def _ensure_client(self, *, attempts: int | None) -> _Protocol:
        async with self._lock:
            if self._closed:
                raise BrokerUnavailable("publisher is closed")
            if self._client is not None and not self._client.lost:
                return self._client
            attempt = 0
            while not self._closed:
                attempt += 1
                try:
                    client = await self._open()
                except (OSError, TimeoutError, EventPublishError) as exc:
                    if attempts is not None and attempt >= attempts:
                        raise BrokerUnavailable(
                            f"no mqtt broker at {self._address.host}:{self._address.port}"
                        ) from exc
                    delay = self._backoff.delay(attempt, rng=self._rng)
                    log.warning(
                        "mqtt_connect_failed",
                        host=self._address.host,
                        port=self._address.port,
                        attempt=attempt,
                        retry_in=round(delay, 3),
                        error=str(exc) or type(exc).__name__,
                    )
                    await asyncio.sleep(delay)
                    continue
                self._client = client
                log.info("mqtt_connected", host=self._address.host, port=self._address.port)
                return client
            raise BrokerUnavailable("publisher is closed")

    async def _open(self) -> _Protocol:
        """A fresh connection, CONNACKed; the outbox, not the connection, redelivers."""
        client = _Protocol(
            asyncio.get_running_loop(),
            ack_timeout=self._timeout,
            # Observed when the PUBACK comes (`_Protocol._puback`): no callback per publish.
            acked=self._publish_seconds.observe,
        )
        await handshake(
            client,
            self._address,
            client_id=self._client_id,
            keepalive=self._keepalive,
            timeout=self._timeout,
        )
        return client

    def _drop(self, client: _Protocol) -> None:
        if self._client is client:
            self._client = None
        client.abort()


# --- subscriptions ---------------------------------------------------------------------------


async def messages(
    url: str,
    topic_filter: str,
    *,
    backoff: Backoff | None = None,
    on_subscribed: Callable[[], None] | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield ``(topic, payload)`` of every message matching the filter, at QoS 1.

    Reconnects with backoff and jitter for as long as the caller iterates; messages
    published while disconnected are the broker's to keep or drop (clean session).
    """
    address = parse_mqtt_url(url)
    delays = backoff or Backoff()
    rng = random.Random()
    attempt = 0
    while True:
        client = aiomqtt.Client(
            address.host,
            address.port,
            username=address.username,
            password=address.password,
            identifier=f"csms-in-{uuid.uuid4().hex[:12]}",
        )
        try:
            async with client:
                await client.subscribe(topic_filter, qos=1)
                log.info("mqtt_subscribed", topic_filter=topic_filter)
                if on_subscribed is not None:
                    on_subscribed()
                attempt = 0
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes | bytearray):
                        payload = str(payload if payload is not None else "").encode()
                    yield str(message.topic), bytes(payload)
        except aiomqtt.MqttError as exc:
            attempt += 1
            delay = delays.delay(attempt, rng=rng)
            log.warning("mqtt_subscription_lost", error=str(exc), retry_in=round(delay, 3))
            await asyncio.sleep(delay)
