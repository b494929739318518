"""MQTT adapter: the embedded amqtt broker, and a QoS 1 publisher that returns on PUBACK.

The only module that imports aiomqtt, paho or amqtt. Their errors are converted here,
at the edge (STYLE.md), into:

    CsmsError
    ├── EventPublishError      the broker did not acknowledge a publish (no PUBACK)
    │   └── BrokerUnavailable      no connection to the broker could be made
    └── EmbeddedBrokerError    the embedded broker could not start

(These belong in csms/errors.py's tree; they live here until that module takes them.)

CONTRACT.md: when nothing listens at ``mqtt.url`` and ``mqtt.embedded`` is true, csms
starts an embedded broker (amqtt) at that address. Delivery is at least once: the
publisher returns only after the broker's PUBACK (MQTT 3.1.1 §4.3.2, QoS 1), so the
outbox marks an event delivered only then and republishes it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho
import structlog
from amqtt.broker import Broker
from amqtt.errors import BrokerError

from csms.errors import CsmsError

log = structlog.get_logger("csms.mqtt")

DEFAULT_PORT = 1883
PROBE_TIMEOUT = 1.0
MAX_INFLIGHT = 200


class EventPublishError(CsmsError):
    """The broker did not acknowledge a publish; the event was not delivered."""


class BrokerUnavailable(EventPublishError):
    """No connection to the broker could be made."""


class EmbeddedBrokerError(CsmsError):
    """The embedded broker could not start (for example, the port is taken)."""


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
    client_id = f"csms-probe-{uuid.uuid4().hex[:12]}".encode()
    body = (
        b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keep-alive
        + len(client_id).to_bytes(2, "big")
        + client_id
    )
    return b"\x10" + bytes([len(body)]) + body


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


class Publisher:
    """Publishes to one broker at QoS 1 and returns only after the broker's PUBACK.

    Connects on first use (or ``connect()``), retrying with Backoff; a failed publish
    drops the connection and the next one reconnects. Safe to share between tasks.
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
    ) -> None:
        """Configure; nothing connects until ``connect()`` or the first publish.

        Args:
            url: ``mqtt.url``.
            client_id: the MQTT client identifier; a random ``csms-...`` one by default.
            keepalive: MQTT keep-alive, seconds.
            timeout: seconds to wait for CONNACK, and for each PUBACK.
            backoff: reconnect delays.
            rng: the jitter source; seed one for reproducible delays.
        """
        self._address = parse_mqtt_url(url)
        self._client_id = client_id or f"csms-{uuid.uuid4().hex[:16]}"
        self._keepalive = keepalive
        self._timeout = timeout
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._client: aiomqtt.Client | None = None
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
        client = await self._ensure_client(attempts=None)
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=self._timeout)
            return
        except aiomqtt.MqttCodeError as exc:
            await self._drop(client)
            if exc.rc != paho.MQTT_ERR_NO_CONN:
                raise EventPublishError(f"publish to {topic} failed: {exc}") from exc
            # Not connected: paho refused to send it, so sending again cannot duplicate.
            log.info("mqtt_connection_lost", host=self._address.host, port=self._address.port)
        except aiomqtt.MqttError as exc:
            await self._drop(client)
            raise EventPublishError(f"publish to {topic} not acknowledged: {exc}") from exc
        client = await self._ensure_client(attempts=None)
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=self._timeout)
        except aiomqtt.MqttError as exc:
            await self._drop(client)
            raise EventPublishError(f"publish to {topic} not acknowledged: {exc}") from exc

    async def close(self) -> None:
        """Disconnect; later calls raise BrokerUnavailable."""
        self._closed = True
        async with self._lock:
            if self._client is not None:
                await self._drop(self._client)

    async def _ensure_client(self, *, attempts: int | None) -> aiomqtt.Client:
        async with self._lock:
            if self._closed:
                raise BrokerUnavailable("publisher is closed")
            if self._client is not None:
                return self._client
            attempt = 0
            while not self._closed:
                attempt += 1
                # A fresh client per connection: paho keeps in-flight state per client,
                # and the outbox, not paho, is what redelivers.
                client = aiomqtt.Client(
                    self._address.host,
                    self._address.port,
                    username=self._address.username,
                    password=self._address.password,
                    identifier=self._client_id,
                    clean_session=True,
                    keepalive=self._keepalive,
                    timeout=self._timeout,
                    # The relay pipelines each charger's events; let them be in flight.
                    max_inflight_messages=MAX_INFLIGHT,
                )
                # aiomqtt warns (a log line per publish) past 10 waiting publishes.
                client.pending_calls_threshold = MAX_INFLIGHT * 10
                try:
                    await client.__aenter__()
                except aiomqtt.MqttError as exc:
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
                        error=str(exc),
                    )
                    await asyncio.sleep(delay)
                    continue
                self._client = client
                log.info("mqtt_connected", host=self._address.host, port=self._address.port)
                return client
            raise BrokerUnavailable("publisher is closed")

    async def _drop(self, client: aiomqtt.Client) -> None:
        if self._client is client:
            self._client = None
        # A dead connection can fail to disconnect cleanly; it is gone either way.
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await client.__aexit__(None, None, None)
        # aiomqtt 2.5 sets an "Unexpected disconnection" error on a future that only a
        # message iterator or a failing publish reads. A publisher that loses its broker
        # while idle would leave it unread, and asyncio logs "Future exception was never
        # retrieved"; read it here, we already know.
        disconnected = getattr(client, "_disconnected", None)
        if isinstance(disconnected, asyncio.Future) and disconnected.done():
            if not disconnected.cancelled():
                disconnected.exception()


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
