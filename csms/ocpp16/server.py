"""The OCPP-J 1.6 WebSocket server: admission before the upgrade, then one loop per charger."""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from http import HTTPStatus
from typing import Any, cast

import structlog
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.config import OcppSettings, SecuritySettings
from csms.core.charger import SecurityEventFacts
from csms.core.passwords import PasswordHasher
from csms.core.security import ClientCnRule
from csms.core.security_events import SecurityEventSource
from csms.errors import ConfigError, StoreError
from csms.metrics import Metrics
from csms.ocpp16.admission import Admission, Gatekeeper, Refusal, refuse, server_tls_context
from csms.ocpp16.connection import ChargerConnection
from csms.ocpp16.context import ChargerContext, Handler, Services
from csms.ocpp16.leniency import Leniency
from csms.ocpp16.limits import Limits
from csms.ocpp16.rpc import RpcSession
from csms.ocpp16.schemas import load_validators
from csms.ocpp16.sockets import Listener, OcppSocket, Peer
from csms.ocpp16.tls import HandshakeFailure, HeardConnection, TlsSettings, tls_connection_class
from csms.store import chargers
from csms.store.db import Database

log = structlog.get_logger("csms.ocpp")

SUBPROTOCOL = Subprotocol("ocpp1.6")
LISTEN_BACKLOG = 8192
HANDSHAKE_TIMEOUT = 60.0
# Seconds a charger refused with 503 (the database is away) is asked to wait.
RETRY_AFTER_SECONDS = 30


def resolve_transport(setting: str) -> str:
    """The WebSocket layer that ocpp.transport names: "auto" is picows when it is installed."""
    if setting == "websockets":
        return setting
    try:
        import picows  # noqa: F401
    except ImportError:
        if setting == "picows":
            raise ConfigError(
                "ocpp.transport = picows needs the picows package: pip install 'csms[speed]'"
            ) from None
        return "websockets"
    return "picows"


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
        passwords: PasswordHasher | None = None,
        counters: Counter[str] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.handlers = handlers
        self.security = security or SecuritySettings()
        self.services = services
        self.database = database
        # What went wrong and how often, for operators (GET /api/v1/counters).
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.gatekeeper = Gatekeeper(
            ocpp=settings,
            security=self.security,
            database=database,
            passwords=passwords,
            on_refused=self._refused,
            on_password_upgrade=self._password_upgraded,
            metrics=self.metrics,
            counters=self.counters,
        )
        self.validators = load_validators()
        self.limits = Limits.from_settings(settings)
        self.leniency = Leniency.from_rules(settings.leniency) if settings.leniency else None
        # OCPP 1.6 §4.6: two heartbeat intervals and a grace without a message is silence.
        interval = max(settings.heartbeat_interval, settings.pending_interval)
        self.silence_limit = 2 * interval + settings.heartbeat_grace
        self._normalisations_logged: dict[str, set[tuple[str, str, str]]] = {}
        self.chargers: dict[str, ChargerConnection] = {}
        self.transport = resolve_transport(settings.transport)
        self._admissions: weakref.WeakKeyDictionary[ServerConnection, Admission] = (
            weakref.WeakKeyDictionary()
        )
        # Called with (charge_point_id, connected) whenever the registry changes.
        self.listeners: list[Callable[[str, bool], None]] = []
        self._plain: Listener | None = None
        self._tls: Listener | None = None
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
            log.info(
                "ocpp_listening",
                host=self.settings.host,
                port=self.port,
                tls=False,
                transport=self.transport,
            )
        if self.security.tls_port:
            context = server_tls_context(self.security)
            self._tls = await self._listen(
                self.security.tls_host, self.security.tls_port, tls=context
            )
            log.info(
                "ocpp_listening",
                host=self.security.tls_host,
                port=self.tls_port,
                tls=True,
                transport=self.transport,
            )

    def _tls_settings(self, tls: ssl.SSLContext | None) -> TlsSettings | None:
        if tls is None:
            return None
        # The handshake runs in the connection, so that a failed one is logged and
        # counted (tls.py), on asyncio's loop and on uvloop alike: the loop's own TLS
        # server (ssl=) drops a failed handshake silently on both (uvloop logs it only
        # in debug mode), so the listener takes plain TCP and never gets ssl= here.
        return TlsSettings(
            context=tls,
            handshake_timeout=HANDSHAKE_TIMEOUT,
            shutdown_timeout=self.settings.ping_timeout,
            on_failure=self._tls_failed,
        )

    async def _listen(self, host: str, port: int, *, tls: ssl.SSLContext | None) -> Listener:
        tls_settings = self._tls_settings(tls)
        if self.transport == "picows":
            return await self._listen_picows(host, port, tls=tls, tls_settings=tls_settings)
        connection: type[HeardConnection] = HeardConnection
        if tls_settings is not None:
            connection = tls_connection_class(tls_settings)
        return await serve(
            self._serve_charger,
            host,
            port,
            # websockets calls create_connection like the class; a partial carries the limits.
            create_connection=cast(type[ServerConnection], partial(connection, limits=self.limits)),
            # A bigger frame closes the connection with 1009 (RFC 6455 §7.4.1).
            max_size=self.settings.max_frame_size,
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

    async def _listen_picows(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        tls_settings: TlsSettings | None,
    ) -> Listener:
        # Imported here: picows is optional (the `speed` extra).
        from csms.ocpp16.picows_socket import PicowsOptions
        from csms.ocpp16.transport_picows import PicowsServer

        options = PicowsOptions(
            subprotocol=SUBPROTOCOL,
            max_frame_size=self.settings.max_frame_size,
            ping_interval=self.settings.ping_interval,
            ping_timeout=self.settings.ping_timeout,
            close_timeout=self.settings.ping_timeout,
            handshake_timeout=HANDSHAKE_TIMEOUT,
            limits=self.limits,
        )
        server = PicowsServer(
            admit=self._admit_picows,
            serve=self._serve_admitted,
            options=options,
            tls=tls_settings,
        )
        # The same admission, limits and close rules as the websockets listener above.
        await server.listen(
            host,
            port,
            ssl_context=tls if tls_settings is None else None,
            backlog=LISTEN_BACKLOG,
        )
        return server

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
        try:
            outcome = await self.gatekeeper.admit(connection, request)
        except StoreError as exc:
            return _unavailable(connection, exc)
        if isinstance(outcome, Response):
            return outcome
        self._admissions[connection] = outcome
        return None

    async def _admit_picows(self, connection: Peer, request: Request) -> Admission | Response:
        try:
            return await self.gatekeeper.admit(connection, request)
        except StoreError as exc:
            # As _unavailable does for websockets: 503 and Retry-After, not a 500.
            log.warning("upgrade_refused_store_unavailable", error=str(exc))
            return refuse(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "database unavailable, retry later",
                retry_after=RETRY_AFTER_SECONDS,
            )

    async def _serve_charger(self, websocket: ServerConnection) -> None:
        await self._serve_admitted(websocket, self._admissions.pop(websocket))

    async def _serve_admitted(self, websocket: OcppSocket, admission: Admission) -> None:
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

    async def _open(self, websocket: OcppSocket, admission: Admission) -> ChargerConnection:
        identity = admission.charge_point_id
        now = self.services.clock()
        if not admission.known:
            await self.services.chargers.register(
                charge_point_id=identity, registration=admission.registration, now=now
            )
            log.info("charge_point_registered", registration=admission.registration.value)
        if admission.ratchet:
            await self._raise_profile(identity, admission.profile)
        leniency = self.leniency
        connection = ChargerConnection(
            websocket=websocket,
            context=ChargerContext(
                charge_point_id=identity,
                services=self.services,
                accepted=admission.accepted,
                location_id=admission.location_id,
                registration=admission.registration,
            ),
            rpc=RpcSession(
                validators=self.validators,
                supported=self.handlers.keys(),
                accepted=admission.accepted,
                leniency=leniency,
                profile=leniency.profile_for(admission.vendor, admission.model)
                if leniency is not None
                else None,
                limits=self.limits,
            ),
            handlers=self.handlers,
            call_timeout=self.settings.call_timeout,
            metrics=self.metrics,
            silence_limit=self.silence_limit,
            counters=self.counters,
            normalisations_logged=self._normalisations_logged.setdefault(identity, set()),
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
                reason=connection.closed_because or connection.websocket.close_reason or None,
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

    def _tls_failed(self, failure: HandshakeFailure) -> None:
        self.counters["tls.handshake_failed"] += 1
        self.counters[f"tls.handshake_failed.{failure.reason}"] += 1
        certificate = failure.certificate
        log.warning(
            "tls_handshake_failed",
            remote_address=failure.remote_address,
            reason=failure.reason,
            certificate_cn=certificate.common_name if certificate else None,
        )
        if failure.kind is not None and certificate is not None and certificate.common_name:
            self._spawn(self._tls_security_event(failure, certificate.common_name))

    async def _tls_security_event(self, failure: HandshakeFailure, common_name: str) -> None:
        # SecWP A00.FR.408: an invalid client certificate is a security event; it belongs to
        # the charger the certificate names, if that is one csms knows.
        rule = ClientCnRule(self.security.client_cn)
        try:
            if rule is ClientCnRule.IDENTITY:
                row = await self.gatekeeper.lookup(common_name)
            elif rule is ClientCnRule.SERIAL:
                row = await self.database.read(
                    lambda session: chargers.find_by_serial_number(session, common_name)
                )
            else:
                return
        except StoreError as exc:
            log.error("security_event_not_recorded", error=str(exc))
            return
        if row is None:
            return
        assert failure.kind is not None
        now = self.services.clock()
        facts = SecurityEventFacts(
            charge_point_id=row.id,
            kind=failure.kind.value,
            timestamp=now,
            source=SecurityEventSource.CSMS,
            tech_info=f"tls handshake failed: {failure.reason}",
            remote_address=failure.remote_address,
        )
        try:
            await self.services.chargers.security_event(facts, now=now)
        except StoreError as exc:
            log.error("security_event_not_recorded", error=str(exc))

    def _password_upgraded(self, identity: str, old_hash: str, new_hash: str) -> None:
        self._spawn(self._upgrade_password(identity, old_hash, new_hash))

    async def _upgrade_password(self, identity: str, old_hash: str, new_hash: str) -> None:
        try:
            await self.services.chargers.password_upgraded(
                charge_point_id=identity, old_hash=old_hash, new_hash=new_hash
            )
        except StoreError as exc:
            # The old hash still works; the next login tries again.
            log.warning("password_upgrade_not_stored", charge_point_id=identity, error=str(exc))
            return
        log.info("password_hash_upgraded", charge_point_id=identity)

    async def _raise_profile(self, identity: str, profile: int) -> None:
        # SecWP A05.FR.09: once a charger connected at a higher profile, it may not come
        # back lower.
        await self.services.chargers.raise_profile(
            charge_point_id=identity, profile=profile, now=self.services.clock()
        )
        log.warning("security_profile_raised", security_profile=profile)

    async def wait_background(self) -> None:
        """Wait for the work connections left behind (security events, password upgrades)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _notify(self, charge_point_id: str, *, connected: bool) -> None:
        for listener in self.listeners:
            listener(charge_point_id, connected)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _unavailable(connection: ServerConnection, exc: StoreError) -> Response:
    """HTTP 503 with Retry-After for an upgrade csms cannot decide on: the database is
    away (RFC 9110 §15.6.4); the charger comes back later instead of seeing our 500."""
    log.warning("upgrade_refused_store_unavailable", error=str(exc))
    response = connection.respond(503, "database unavailable, retry later\n")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _select_subprotocol(
    _connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    # Unlike the library default, a client offering nothing still completes the handshake,
    # so that it can be closed as OCPP-J §3.2 asks.
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def _port_of(server: Listener | None) -> int:
    if server is None:
        raise RuntimeError("listener is not running")
    return int(next(iter(server.sockets)).getsockname()[1])
