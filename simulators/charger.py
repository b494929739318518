"""The thin websocket shell around a :class:`~simulators.station.Station`, and the
scripting API tests use (:class:`Charger`).

One asyncio task per charger: it waits for the next websocket message with a timeout set
to the station's next timer, feeds the station, and sends what the station put in its
outbox. Calls made from other tasks (tests) go into the station and wake that task up by
moving its timeout to "now".
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl as ssl_module
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from .clock import Clock
from .ocppj import CallError, ConnectionLost, validate_request
from .scenario import ChargerPlan, FaultKind, PlannedFault
from .smart import Electrical
from .station import (
    ChargerInfo,
    CloseMode,
    ConnectorStatus,
    EvSpec,
    IncomingCall,
    Registration,
    SessionRecord,
    Station,
    StopReason,
)
from .stats import Stats

__all__ = ["Charger", "basic_auth_header", "make_ssl_context", "with_client_certificate"]

SUBPROTOCOL = Subprotocol("ocpp1.6")


_HEX_KEY = re.compile(r"(?:[0-9a-fA-F]{2}){16,20}")


def basic_auth_header(identity: str, password: str) -> str:
    """HTTP Basic credentials as OCPP 1.6 security profiles 1 and 2 send them.

    A password of 32-40 hex digits is an AuthorizationKey: the charger sends its 16-20
    raw bytes (OCPP-J 1.6 §6.2.2; OCTT TC_085_CS), not the hex text. Anything else is
    sent as its UTF-8 text.
    """
    secret = bytes.fromhex(password) if _HEX_KEY.fullmatch(password) else password.encode()
    token = base64.b64encode(identity.encode() + b":" + secret).decode("ascii")
    return f"Basic {token}"


def make_ssl_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl_module.SSLContext:
    """A client TLS context: trust ``ca_file`` (or the system store), present a client
    certificate when ``cert_file`` is given (security profiles 2 and 3)."""
    context = ssl_module.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def with_client_certificate(
    base: ssl_module.SSLContext, chain_pem: str, key_pem: str
) -> ssl_module.SSLContext:
    """A client TLS context that trusts what ``base`` trusts and presents another certificate.

    A fresh context rather than ``base`` changed: chargers of a fleet share theirs.
    """
    context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
    authorities = base.get_ca_certs(binary_form=True)
    if authorities:
        for der in authorities:
            context.load_verify_locations(cadata=der)
    else:  # the system store, which base loaded without listing it
        context.load_default_certs()
    context.check_hostname = base.check_hostname
    context.verify_mode = base.verify_mode
    context.minimum_version = base.minimum_version
    context.maximum_version = base.maximum_version
    # ssl loads certificates and keys from files only: a private directory, gone at once.
    with tempfile.TemporaryDirectory(prefix="csms-sim-") as directory:
        chain_file, key_file = Path(directory, "chain.pem"), Path(directory, "key.pem")
        chain_file.write_text(chain_pem)
        key_file.write_text(key_pem)
        context.load_cert_chain(chain_file, key_file)
    return context


class Charger:
    """A simulated charge point on a real websocket.

    Scripted use (tests)::

        async with Charger(url=ocpp_url, identity="CP-1", connectors=2) as cp:
            await cp.boot()
            await cp.status(1, "Available")
            tx = await cp.start_transaction(connector_id=1, id_tag="TAG", meter_start=0)
            incoming = await cp.next_incoming("RemoteStopTransaction", timeout=5)

    Every CALL from the central system is validated and answered automatically by the
    simulated charger (RemoteStart starts a real simulated session, and so on);
    :meth:`next_incoming` hands it over afterwards.
    """

    def __init__(
        self,
        url: str,
        identity: str,
        connectors: int = 2,
        *,
        vendor: str = "SimVendor",
        model: str = "SIM-AC22",
        serial: str = "",
        firmware: str = "1.0.0",
        info: ChargerInfo | None = None,
        password: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        config: Mapping[str, str | int | bool | float] | None = None,
        speed: float = 1.0,
        clock: Clock | None = None,
        stats: Stats | None = None,
        plan: ChargerPlan | None = None,
        electrical: Electrical | None = None,
        default_ev: EvSpec | None = None,
        remote_dwell: float | None = None,
        auto_boot: bool = False,
        auto_reconnect: bool = False,
        call_timeout: float = 30.0,
        open_timeout: float = 10.0,
        reconnect_base: float = 1.0,
        reconnect_cap: float = 30.0,
        drain_timeout: float = 10.0,
        validate_outbound: bool = True,
        record: bool = True,
        seed: int | str | None = None,
        quirks: Iterable[str] = (),
    ) -> None:
        self.url = url.rstrip("/")
        self.speed = speed
        self._clock = clock
        self._ssl = ssl
        self._headers: dict[str, str] = {}
        if password is not None:
            self._headers["Authorization"] = basic_auth_header(identity, password)
        self.open_timeout = open_timeout
        self.record = record
        placeholder = Clock(speed=speed)
        self.core = Station(
            info
            or ChargerInfo(identity, vendor=vendor, model=model, serial=serial, firmware=firmware),
            connectors,
            clock=clock or placeholder,
            stats=stats,
            config=config,
            electrical=electrical,
            plan=plan,
            default_ev=default_ev,
            remote_dwell=remote_dwell,
            auto_boot=auto_boot,
            auto_reconnect=auto_reconnect,
            call_timeout=call_timeout,
            reconnect_base=reconnect_base,
            reconnect_cap=reconnect_cap,
            drain_timeout=drain_timeout,
            validate_outbound=validate_outbound,
            keep_raw=record,
            seed=seed,
            quirks=quirks,
        )
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Timeout | None = None
        self._closing = False
        self._connect_waiters: list[asyncio.Future[None]] = []
        self._change_waiters: list[asyncio.Future[None]] = []
        self._incoming: deque[IncomingCall] = deque(maxlen=1000)
        self._incoming_waiters: list[tuple[str | None, asyncio.Future[IncomingCall]]] = []
        self.last_error: BaseException | None = None
        if record:
            self.core.incoming_hook = self._on_incoming

    # ------------------------------------------------------------------ properties

    @property
    def identity(self) -> str:
        """The charge point identity."""
        return self.core.identity

    @property
    def stats(self) -> Stats:
        """Counters (shared with the fleet when the charger belongs to one)."""
        return self.core.stats

    @property
    def connected(self) -> bool:
        """Whether the websocket is open."""
        return self.core.connected

    @property
    def registration(self) -> Registration:
        """The last BootNotification outcome."""
        return self.core.registration

    @property
    def completed(self) -> list[SessionRecord]:
        """Transactions this charger has finished (with their StopTransaction answered)."""
        return self.core.completed

    def connector_status(self, connector_id: int) -> ConnectorStatus:
        """The simulated status of a connector."""
        return self.core.status_of(connector_id)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Charger:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _ensure_task(self, *, scripted: bool) -> None:
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        if self._clock is None:
            self._clock = Clock.starting_now(loop.time(), self.speed)
            self.core.clock = self._clock
        if scripted:
            self.core.begin(loop.time())
        self._task = loop.create_task(self._run(), name=f"charger {self.identity}")

    def start(self) -> None:
        """Run the charger's plan on its own (fleet use): connect, boot, follow the script."""
        self._ensure_task(scripted=True)

    async def connect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Open the websocket (again) and wait until it is open."""
        self._ensure_task(scripted=False)
        if self.core.connected:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connect_waiters.append(waiter)
        self.core.connect_now(self._now())
        self._poke()
        async with asyncio.timeout(timeout if timeout is not None else self.open_timeout + 5):
            await waiter

    async def disconnect(self, *, abrupt: bool = True) -> None:
        """Drop the connection (like a network failure unless ``abrupt=False``); the charger
        keeps running and queues transaction messages until :meth:`connect`."""
        self.core.disconnect(self._now(), abrupt=abrupt)
        self._poke()
        await self.wait_for(lambda: not self.core.connected, timeout=10.0)

    async def close(self) -> None:
        """Close the connection and stop the charger's task."""
        self._closing = True
        self._poke()
        task = self._task
        if task is not None:
            try:
                await task
            finally:
                self._task = None

    def shutdown(self) -> None:
        """End of run: stop sessions cleanly (reason Local), drain, close (see :meth:`wait`)."""
        self.core.shutdown(self._now())
        self._changed()
        self._poke()

    async def wait(self) -> None:
        """Wait for the charger's task to end."""
        if self._task is not None:
            await self._task

    # ------------------------------------------------------------------ the loop

    def _poke(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            try:
                wakeup.reschedule(self._now())
            except RuntimeError:  # already expiring: it will wake anyway
                pass

    async def _run(self) -> None:
        core = self.core
        loop = asyncio.get_running_loop()
        try:
            while not core.done:
                ws = self._ws
                if self._closing:
                    if ws is not None:
                        await self._send_outbox(ws)
                        await self._close_ws(ws, CloseMode.GRACEFUL)
                    break
                if ws is None:
                    if core.wants_connection(loop.time()):
                        await self._open()
                        continue
                    await self._idle(core.next_deadline())
                    if not self._closing:
                        core.on_timer(loop.time())
                        self._changed()
                    continue
                if core.outbox and not await self._send_outbox(ws):
                    continue
                if core.ping_requested:
                    core.ping_requested = False
                    try:
                        await ws.ping()  # the pong is not awaited: liveness only
                    except ConnectionClosed:
                        self._lost()
                        continue
                if core.new_certificate:
                    core.new_certificate = False
                    self._present_new_certificate(loop.time())
                if core.close_request is not None:
                    await self._close_ws(ws, core.close_request)
                    continue
                try:
                    async with asyncio.timeout_at(core.next_deadline()) as wakeup:
                        self._wakeup = wakeup
                        data = await ws.recv(decode=False)
                        self._wakeup = None
                except TimeoutError:
                    self._wakeup = None
                    core.on_timer(loop.time())
                    self._changed()
                    continue
                except ConnectionClosed:
                    self._wakeup = None
                    self._lost()
                    continue
                core.on_frame(data, loop.time())
                self._changed()
        except Exception as exc:  # keep the fleet alive; report it
            self.last_error = exc
            core.stats.protocol_error(self.identity, f"charger task failed: {exc!r}")
            raise
        finally:
            self._wakeup = None
            ws = self._ws
            if ws is not None:
                self._ws = None
                ws.transport.abort()
                core.on_disconnected(loop.time())
            self._fail_waiters(ConnectionLost("charger closed"))
            self._changed()

    async def _idle(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline) as wakeup:
                self._wakeup = wakeup
                await loop.create_future()
        except TimeoutError:
            pass
        finally:
            self._wakeup = None

    async def _open(self) -> None:
        core = self.core
        loop = asyncio.get_running_loop()
        uri = f"{self.url}/{quote(self.identity, safe='')}"
        extra: dict[str, Any] = {}
        if self._ssl is not None:
            extra["ssl"] = self._ssl
        try:
            ws = await connect(
                uri,
                subprotocols=[SUBPROTOCOL],
                additional_headers=self._headers or None,
                open_timeout=self.open_timeout,
                ping_interval=None,
                ping_timeout=None,
                close_timeout=2.0,
                compression=None,
                max_size=2**20,
                user_agent_header=None,
                proxy=None,
                **extra,
            )
        except Exception as exc:
            now = loop.time()
            if core.auto_reconnect or core.stopping or not self._connect_waiters:
                core.on_connect_failed(now, f"{type(exc).__name__}: {exc}")
            else:
                core.want_connected = False
                for waiter in self._take_connect_waiters():
                    waiter.set_exception(ConnectionError(f"cannot connect to {uri}: {exc}"))
            self._changed()
            return
        self._ws = ws
        core.on_connected(loop.time(), ws.subprotocol)
        for waiter in self._take_connect_waiters():
            waiter.set_result(None)
        self._changed()

    def _present_new_certificate(self, now: float) -> None:
        """SecWP A02: reconnect with the certificate the central system just signed.

        Only a TLS connection presents one; without TLS the new certificate is kept for
        when the charger is moved to security profile 3.
        """
        keys = self.core.keys
        chain_pem, key_pem = keys.chain_pem, keys.key_pem()
        if self._ssl is None or chain_pem is None or key_pem is None:
            return
        self._ssl = with_client_certificate(self._ssl, chain_pem, key_pem)
        self.core.reconnect(now)

    def _take_connect_waiters(self) -> list[asyncio.Future[None]]:
        waiters, self._connect_waiters = self._connect_waiters, []
        return [w for w in waiters if not w.done()]

    async def _send_outbox(self, ws: ClientConnection) -> bool:
        outbox = self.core.outbox
        try:
            while outbox:
                await ws.send(outbox.popleft(), text=True)
        except ConnectionClosed:
            self._lost()
            return False
        return True

    async def _close_ws(self, ws: ClientConnection, mode: CloseMode) -> None:
        if mode is CloseMode.ABRUPT:
            ws.transport.abort()
        else:
            try:
                await ws.close()
            except Exception:
                ws.transport.abort()
        self._lost()

    def _lost(self) -> None:
        self._ws = None
        self.core.on_disconnected(self._now())
        self._changed()

    def _changed(self) -> None:
        if self._change_waiters:
            waiters, self._change_waiters = self._change_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _fail_waiters(self, error: BaseException) -> None:
        for waiter in self._take_connect_waiters():
            waiter.set_exception(error)

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate()`` holds (checked after every event of this charger)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not predicate():
                if self._task is None or self._task.done():
                    raise ConnectionLost("charger is not running")
                waiter: asyncio.Future[None] = loop.create_future()
                self._change_waiters.append(waiter)
                await waiter

    def _on_incoming(self, call: IncomingCall) -> None:
        for action, waiter in self._incoming_waiters:
            if not waiter.done() and (action is None or action == call.action):
                waiter.set_result(call)
                self._incoming_waiters = [w for w in self._incoming_waiters if not w[1].done()]
                return
        self._incoming.append(call)

    async def next_incoming(
        self,
        action: str | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> IncomingCall:
        """The next CALL from the central system (of ``action``, if given), once answered."""
        for call in self._incoming:
            if action is None or call.action == action:
                self._incoming.remove(call)
                return call
        waiter: asyncio.Future[IncomingCall] = asyncio.get_running_loop().create_future()
        entry = (action, waiter)
        self._incoming_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        finally:
            if entry in self._incoming_waiters:
                self._incoming_waiters.remove(entry)

    def incoming(self) -> list[IncomingCall]:
        """CALLs received and not yet taken by :meth:`next_incoming`."""
        return list(self._incoming)

    # ------------------------------------------------------------------ raw messages

    def send_raw(self, text: str | bytes) -> None:
        """Send any text as-is; answers to it are kept for :meth:`recv_raw`."""
        data = text.encode() if isinstance(text, str) else text
        self.core.send_raw(data, self._now())
        self._poke()

    async def recv_raw(self, timeout: float = 10.0) -> str:  # noqa: ASYNC109
        """The next message that the simulated charger did not consume itself (answers to
        :meth:`send_raw` CALLs, unparseable frames)."""
        inbox = self.core.raw_inbox
        await self.wait_for(lambda: bool(inbox), timeout=timeout)
        return inbox.popleft().decode()

    # ------------------------------------------------------------------ CALLs

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        transactional: bool = False,
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload; a CALLERROR raises :class:`CallError`.

        ``transactional`` messages are queued while offline and resent per
        TransactionMessageAttempts/RetryInterval, like StartTransaction on real firmware.
        """
        if self.core.validate_outbound:
            violation = validate_request(action, payload)
            if violation is not None:
                raise ValueError(f"invalid {action} payload: {violation.description}")
        future = asyncio.get_running_loop().create_future()
        self.core.call(action, payload, _resolver(future), self._now(), transactional=transactional)
        self._poke()
        async with asyncio.timeout(timeout):
            result: dict[str, Any] = await future
        return result

    async def boot(self, *, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        """BootNotification with this charger's vendor/model/serial/firmware."""
        future = asyncio.get_running_loop().create_future()
        resolve = _resolver(future)
        core = self.core

        def done(result: dict[str, Any] | None, error: CallError | None) -> None:
            core.boot.answered(result, error)
            resolve(result, error)

        core.call("BootNotification", core.boot.payload(), done, self._now())
        self._poke()
        async with asyncio.timeout(timeout):
            result: dict[str, Any] = await future
        return result

    async def status(
        self,
        connector_id: int,
        status: str,
        error_code: str = "NoError",
        **extra: Any,
    ) -> dict[str, Any]:
        """StatusNotification (``extra``: info, vendorId, vendorErrorCode, timestamp)."""
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "status": status,
            "errorCode": error_code,
            "timestamp": self.core.clock.stamp(self._now()),
        }
        payload.update(extra)
        return await self.call("StatusNotification", payload)

    async def heartbeat(self) -> dict[str, Any]:
        """Heartbeat."""
        return await self.call("Heartbeat", {})

    async def authorize(self, id_tag: str) -> dict[str, Any]:
        """Authorize; returns the answer (``idTagInfo``)."""
        return await self.call("Authorize", {"idTag": id_tag})

    async def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        *,
        reservation_id: int | None = None,
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """StartTransaction (queued while offline); returns the answer with transactionId."""
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start,
            "timestamp": timestamp or self.core.clock.stamp(self._now()),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return await self.call("StartTransaction", payload, transactional=True)

    async def meter_values(
        self,
        connector_id: int,
        *,
        transaction_id: int | None = None,
        energy_wh: float | None = None,
        power_w: float | None = None,
        sampled_values: list[dict[str, Any]] | None = None,
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """MeterValues with an energy register and/or power reading (or raw sampled values);
        queued while offline when it belongs to a transaction."""
        values = list(sampled_values or [])
        if energy_wh is not None:
            values.append(
                {
                    "value": f"{energy_wh:g}",
                    "context": "Sample.Periodic",
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                }
            )
        if power_w is not None:
            values.append(
                {
                    "value": f"{power_w:g}",
                    "context": "Sample.Periodic",
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                }
            )
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "meterValue": [
                {
                    "timestamp": timestamp or self.core.clock.stamp(self._now()),
                    "sampledValue": values,
                }
            ],
        }
        if transaction_id is not None:
            payload["transactionId"] = transaction_id
        return await self.call("MeterValues", payload, transactional=transaction_id is not None)

    async def stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        *,
        id_tag: str | None = None,
        reason: str = "Local",
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """StopTransaction (queued while offline)."""
        payload: dict[str, Any] = {
            "transactionId": transaction_id,
            "meterStop": meter_stop,
            "timestamp": timestamp or self.core.clock.stamp(self._now()),
            "reason": reason,
        }
        if id_tag is not None:
            payload["idTag"] = id_tag
        return await self.call("StopTransaction", payload, transactional=True)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        """DataTransfer to the central system."""
        payload: dict[str, Any] = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        return await self.call("DataTransfer", payload)

    # ------------------------------------------------------------------ simulation

    def plug_in(
        self,
        connector_id: int,
        id_tag: str,
        *,
        ev: EvSpec | None = None,
        authorize: bool = True,
        dwell: float | None = None,
        unplug_after: float = 60.0,
    ) -> bool:
        """An EV arrives and the driver badges: the simulated session runs by itself
        (Authorize, StartTransaction, MeterValues ...). False if the connector is busy."""
        started = self.core.plug_in(
            connector_id,
            id_tag,
            self._now(),
            ev=ev,
            authorize=authorize,
            dwell=dwell,
            unplug_after=unplug_after,
        )
        self._poke()
        return started

    def stop_session(self, connector_id: int, reason: StopReason = StopReason.local) -> bool:
        """The driver stops charging (StopTransaction); the EV stays plugged."""
        stopped = self.core.stop_session(connector_id, self._now(), reason)
        self._poke()
        return stopped

    def unplug(self, connector_id: int) -> None:
        """The EV leaves."""
        self.core.unplug(connector_id, self._now())
        self._poke()

    def fault(
        self,
        connector_id: int,
        error_code: str = "OtherError",
        *,
        vendor_error_code: str = "",
        info: str = "",
        duration: float = 60.0,
    ) -> None:
        """The connector goes Faulted for ``duration`` simulated seconds."""
        self.core.inject_fault(
            PlannedFault(
                FaultKind.FAULTED, 0.0, duration, connector_id, error_code, vendor_error_code, info
            ),
            self._now(),
        )
        self._poke()


def _resolver(
    future: asyncio.Future[dict[str, Any]],
) -> Callable[[dict[str, Any] | None, CallError | None], None]:
    def resolve(result: dict[str, Any] | None, error: CallError | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result if result is not None else {})

    return resolve
