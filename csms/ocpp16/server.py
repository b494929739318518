"""The OCPP-J 1.6 WebSocket server: admission before the upgrade, then one loop per charger."""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.config import OcppSettings, SecuritySettings
from csms.core.charger import SecurityEventFacts
from csms.core.security_events import SecurityEventSource
from csms.errors import StoreError
from csms.metrics import Metrics
from csms.ocpp16.admission import Admission, Gatekeeper, Refusal, server_tls_context
from csms.ocpp16.connection import ChargerConnection
from csms.ocpp16.context import ChargerContext, Handler, Services
from csms.ocpp16.rpc import RpcSession
from csms.ocpp16.schemas import load_validators
from csms.store.db import Database

log = structlog.get_logger("csms.ocpp")

SUBPROTOCOL = Subprotocol("ocpp1.6")
LISTEN_BACKLOG = 8192
HANDSHAKE_TIMEOUT = 60.0


class OcppServer:
    """Accepts chargers, keeps the newest connection per identity, and closes them on stop."""

    def __init__(
        self,
        *,
        settings: OcppSettings,
        services: Services,
        handlers: Mapping[str, Handler],
        database: Database,
        security: SecuritySettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.handlers = handlers
        self.security = security or SecuritySettings()
        self.services = services
        self.database = database
        self.gatekeeper = Gatekeeper(
            ocpp=settings,
            security=self.security,
            database=database,
            on_refused=self._refused,
            metrics=self.metrics,
        )
        self.validators = load_validators()
        self.chargers: dict[str, ChargerConnection] = {}
        self._admissions: weakref.WeakKeyDictionary[ServerConnection, Admission] = (
            weakref.WeakKeyDictionary()
        )
        # Called with (charge_point_id, connected) whenever the registry changes.
        self.listeners: list[Callable[[str, bool], None]] = []
        self._plain: Server | None = None
        self._tls: Server | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port of the plain ws:// listener (profiles 0 and 1)."""
        return _port_of(self._plain)

    @property
    def tls_port(self) -> int:
        """The port of the wss:// listener (profiles 2 and 3)."""
        return _port_of(self._tls)

    async def start(self) -> None:
        if self.security.plain_listener:
            self._plain = await self._listen(self.settings.host, self.settings.port, tls=None)
            log.info("ocpp_listening", host=self.settings.host, port=self.port, tls=False)
        if self.security.tls_port:
            context = server_tls_context(self.security)
            self._tls = await self._listen(
                self.security.tls_host, self.security.tls_port, tls=context
            )
            log.info("ocpp_listening", host=self.security.tls_host, port=self.tls_port, tls=True)

    async def _listen(self, host: str, port: int, *, tls: ssl.SSLContext | None) -> Server:
        return await serve(
            self._serve_charger,
            host,
            port,
            ssl=tls,
            subprotocols=[SUBPROTOCOL],
            select_subprotocol=_select_subprotocol,
            process_request=self._admit,
            ping_interval=self.settings.ping_interval,
            ping_timeout=self.settings.ping_timeout,
            # A peer that stopped answering gets no longer to finish the closing handshake.
            close_timeout=self.settings.ping_timeout,
            server_header="csms",
            # permessage-deflate costs CPU and a zlib context (~100 KiB) per connection;
            # OCPP-J frames are small, so it is not offered. SecWP A00.FR.320 forbids
            # compression on TLS for the same reasons as here.
            compression=None,
            # asyncio's default accept queue (100) overflows when thousands of chargers
            # reconnect at once after a restart; the kernel caps this at somaxconn.
            backlog=LISTEN_BACKLOG,
            # In a reconnect storm an upgrade may wait its turn; resetting it after the
            # library's 10 s only makes the charger come back later and try again.
            open_timeout=HANDSHAKE_TIMEOUT,
        )

    async def close(self) -> None:
        """Stop accepting, close every charger with 1001 and wait for their handlers."""
        for server in (self._plain, self._tls):
            if server is not None:
                server.close(close_connections=True)
        for server in (self._plain, self._tls):
            if server is not None:
                await server.wait_closed()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        outcome = await self.gatekeeper.admit(connection, request)
        if isinstance(outcome, Response):
            return outcome
        self._admissions[connection] = outcome
        return None

    async def _serve_charger(self, websocket: ServerConnection) -> None:
        admission = self._admissions.pop(websocket)
        with structlog.contextvars.bound_contextvars(charge_point_id=admission.charge_point_id):
            if websocket.subprotocol != SUBPROTOCOL:
                # OCPP-J §3.2: complete the handshake without the header, then close at once.
                log.warning(
                    "subprotocol_missing",
                    offered=websocket.request.headers.get("Sec-WebSocket-Protocol")
                    if websocket.request
                    else None,
                )
                await websocket.close(code=1002, reason="subprotocol ocpp1.6 required")
                return
            connection = await self._open(websocket, admission)
            try:
                await connection.serve()
            finally:
                await self._closed(connection)

    async def _open(self, websocket: ServerConnection, admission: Admission) -> ChargerConnection:
        identity = admission.charge_point_id
        now = self.services.clock()
        if not admission.known:
            await self.services.chargers.register(charge_point_id=identity, now=now)
            log.info("charge_point_registered")
        if admission.ratchet:
            await self._raise_profile(identity, admission.profile)
        connection = ChargerConnection(
            websocket=websocket,
            context=ChargerContext(
                charge_point_id=identity,
                services=self.services,
                accepted=admission.accepted,
                location_id=admission.location_id,
            ),
            rpc=RpcSession(
                validators=self.validators,
                supported=self.handlers.keys(),
                accepted=admission.accepted,
            ),
            handlers=self.handlers,
            call_timeout=self.settings.call_timeout,
            metrics=self.metrics,
        )
        previous = self.chargers.get(identity)
        self.chargers[identity] = connection
        if previous is not None:
            # Keep-newest (docs/architecture.md, "Connections"): the newest socket wins, the
            # old one is closed.
            log.info("connection_replaced")
            self._spawn(previous.close(code=1000, reason="replaced by a new connection"))
        remote = websocket.remote_address[0] if websocket.remote_address else None
        await self.services.chargers.connected(
            charge_point_id=identity, remote_address=remote, now=now
        )
        log.info("charger_connected", remote_address=remote, security_profile=admission.profile)
        self._notify(identity, connected=True)
        return connection

    async def _closed(self, connection: ChargerConnection) -> None:
        identity = connection.charge_point_id
        if self.chargers.get(identity) is not connection:
            # A replaced socket's late close must not touch its successor.
            log.info("stale_connection_closed")
            return
        del self.chargers[identity]
        now = self.services.clock()
        try:
            await self.services.chargers.disconnected(
                charge_point_id=identity,
                reason=connection.websocket.close_reason or None,
                now=now,
            )
        except StoreError as exc:
            log.error("disconnect_not_recorded", error=str(exc))
        log.info("charger_disconnected", code=connection.websocket.close_code)
        self._notify(identity, connected=False)

    async def _refused(self, refusal: Refusal) -> None:
        if not refusal.known:
            return  # nothing to attach it to, and no table for strangers to fill
        # SecWP A00.FR.408 and the issue: a failed attempt is a security event, kept and
        # published; the reason never carries the password.
        certificate = "certificate" in refusal.reason
        now = self.services.clock()
        facts = SecurityEventFacts(
            charge_point_id=refusal.charge_point_id,
            kind="InvalidChargePointCertificate"
            if certificate
            else "FailedToAuthenticationAtCentralSystem",
            timestamp=now,
            source=SecurityEventSource.CSMS,
            tech_info=f"{refusal.status} {refusal.reason}",
            remote_address=refusal.remote_address,
        )
        try:
            await self.services.chargers.security_event(facts, now=now)
        except StoreError as exc:
            log.error("security_event_not_recorded", error=str(exc))

    async def _raise_profile(self, identity: str, profile: int) -> None:
        # SecWP A05.FR.09: once a charger connected at a higher profile, it may not come
        # back lower.
        await self.services.chargers.raise_profile(
            charge_point_id=identity, profile=profile, now=self.services.clock()
        )
        log.warning("security_profile_raised", security_profile=profile)

    def _notify(self, charge_point_id: str, *, connected: bool) -> None:
        for listener in self.listeners:
            listener(charge_point_id, connected)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _select_subprotocol(
    _connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    # Unlike the library default, a client offering nothing still completes the handshake,
    # so that it can be closed as OCPP-J §3.2 asks.
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def _port_of(server: Server | None) -> int:
    if server is None:
        raise RuntimeError("listener is not running")
    return int(next(iter(server.sockets)).getsockname()[1])
