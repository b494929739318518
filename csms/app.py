"""Composition root: builds every part from the settings and runs them in one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import structlog
import uvicorn

from csms.api.app import create_api
from csms.api.context import ApiContext
from csms.api.home import Home
from csms.cluster.node import ClusterNode
from csms.config import OcpiSettings, Settings, exposure_warnings
from csms.core.passwords import PasswordHasher
from csms.core.session import Party
from csms.events.fanout import EventFanout
from csms.events.mqtt import EmbeddedBroker, Publisher, ensure_broker
from csms.events.relay import Relay
from csms.flows.balancing import Balancer
from csms.flows.certificates import signing_of
from csms.flows.chargers import ChargerFlows
from csms.flows.circuits import CircuitFlows
from csms.flows.commands import Commands
from csms.flows.locations import LocationFlows
from csms.flows.offline import OfflineWatch
from csms.flows.partners import Identity, PartnerFlows
from csms.flows.reservations import ReservationExpiry
from csms.flows.roaming_commands import RoamingCommands
from csms.flows.roaming_hub import HubFlows
from csms.flows.roaming_locations import PartnerLocations
from csms.flows.roaming_push import PushDelivery
from csms.flows.roaming_tokens import TokenFlows
from csms.flows.sessions import SessionFlows
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import SubscriptionRenewal, WalletFlows
from csms.flows.webhooks import WebhookFlows
from csms.ingress import CommandIngress
from csms.metrics import Metrics
from csms.ocpi.app import create_ocpi_app
from csms.ocpi.client import OcpiClient
from csms.ocpi.services import OcpiServices
from csms.ocpp16.context import Services
from csms.ocpp16.handlers import HANDLERS
from csms.ocpp16.server import OcppServer
from csms.store.db import Database
from csms.store.pepper import load_pepper
from csms.webhooks.dispatcher import WebhookDispatcher
from csms.webhooks.http import Resolve, TargetGuard, resolve_host

log = structlog.get_logger("csms")

SHUTDOWN_GRACE = 8.0
GIL_SWITCH_INTERVAL = 0.0005
# The collector's youngest-generation threshold while csms serves (CPython's is 700 net new
# container objects). Under P2's load the relay's passes (up to 2,000 rows at a time) and a
# writer batch's jobs pushed it past 700 some 300 times a second, promoting live work into
# the older generations and so starting a full collection every half second; with 10,000
# the young collections are rare and almost everything they meet is already gone.
GC_YOUNG_THRESHOLD = 10_000
# Events still in the outbox after this are published at the next start.
EVENT_FLUSH_TIMEOUT = 3.0
# After the grace, how long the API thread gets to see its force_exit flag (uvicorn polls
# it every 0.1 s).
API_FORCED_EXIT = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])


class Roaming:
    """The OCPI side of csms (docs/ocpi.md): the listener, the client, the pushes."""

    def __init__(
        self,
        settings: OcpiSettings,
        *,
        database: Database,
        party: Party,
        sessions: SessionFlows,
        commands: Commands,
        online: OcppServer,
        call_timeout: float,
        on_reservations_changed: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.client = OcpiClient(
            country_code=settings.country_code,
            party_id=settings.party_id,
            timeout=settings.call_timeout,
            allow_private_targets=settings.allow_private_targets,
        )
        views = PartnerLocations(party=party, online=online.chargers, clock=utc_now)
        self.partners = PartnerFlows(
            database=database,
            client=self.client,
            identity=Identity(
                country_code=settings.country_code,
                party_id=settings.party_id,
                name=settings.name,
                base_url=self.base_url,
            ),
            clock=utc_now,
        )
        self.tokens = TokenFlows(
            database=database,
            client=self.client,
            clock=utc_now,
            authorize_timeout=settings.authorize_timeout,
        )
        self.push = PushDelivery(
            database=database,
            client=self.client,
            views=views,
            country_code=settings.country_code,
            party_id=settings.party_id,
            clock=utc_now,
            retry_ceiling=settings.retry_max_delay,
            resync_interval=settings.resync_interval,
        )
        self.partners.listeners.append(self.push.partner_changed)
        self.partners.everyone_listeners.append(self.push.everyone_changed)
        database.writer.listeners.append(self.push.wake)
        sessions.roaming = self.tokens
        self.commands = RoamingCommands(
            database=database,
            commands=commands,
            tokens=self.tokens,
            views=views,
            client=self.client,
            clock=utc_now,
            call_timeout=call_timeout,
            on_result_queued=self.push.wake_sender,
            on_reservations_changed=on_reservations_changed,
        )
        app = create_ocpi_app(
            OcpiServices(
                database=database,
                partners=self.partners,
                tokens=self.tokens,
                commands=self.commands,
                views=views,
                hubs=HubFlows(database=database),
                clock=utc_now,
                country_code=settings.country_code,
                party_id=settings.party_id,
                base_url=self.base_url,
                max_body_bytes=settings.max_body_bytes,
            )
        )
        self.server = _ApiServer(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                ssl_certfile=settings.cert_file or None,
                ssl_keyfile=settings.key_file or None,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )

    def base_url(self) -> str:
        """Where partners reach the listener: `ocpi.base_url`, else its own address."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        scheme = "https" if self.settings.cert_file else "http"
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        port = self.server.port if self.server.started else self.settings.port
        return f"{scheme}://{host}:{port}"


class Csms:
    """One csms process: OCPP server, HTTP API and database writer."""

    def __init__(self, settings: Settings, *, resolve: Resolve = resolve_host) -> None:
        """`resolve` turns webhook host names into addresses (tests pass a fixed table)."""
        self.settings = settings
        self.metrics = Metrics()
        self.database = Database(settings.database.url, metrics=self.metrics)
        # docs/security.md, "Passwords": AuthorizationKeys are HMACs keyed by this pepper.
        self.passwords = PasswordHasher(
            pepper=load_pepper(
                configured=settings.security.password_pepper, database_url=settings.database.url
            )
        )
        self.counters: Counter[str] = Counter()
        party = Party(
            country_code=settings.ocpi.country_code,
            party_id=settings.ocpi.party_id,
            currency=settings.ocpi.currency,
        )
        pricing = SessionPricing(database=self.database, party=party)
        self.wallet = WalletFlows(
            database=self.database, party=party, pricing=pricing, clock=utc_now
        )
        self.renewal = SubscriptionRenewal(
            flows=self.wallet,
            database=self.database,
            clock=utc_now,
            interval=settings.wallet.renewal_interval,
        )
        sessions = SessionFlows(
            database=self.database, party=party, pricing=pricing, wallet=self.wallet
        )
        self.services = Services(
            chargers=ChargerFlows(database=self.database, party=party),
            sessions=sessions,
            clock=utc_now,
            heartbeat_interval=settings.ocpp.heartbeat_interval,
            pending_interval=settings.ocpp.pending_interval,
        )
        self.publisher = Publisher(settings.mqtt.url, metrics=self.metrics)
        self.live = EventFanout()
        self.relay = Relay(
            metrics=self.metrics,
            fanout=self.live,
            database=self.database,
            publisher=self.publisher,
            topic_prefix=settings.mqtt.topic_prefix,
            clock=utc_now,
            retention=timedelta(seconds=settings.mqtt.outbox_retention),
            webhook_hold=timedelta(seconds=settings.webhooks.max_hold),
        )
        self.database.writer.listeners.append(self.relay.wake)
        guard = TargetGuard(allow_private=settings.webhooks.allow_private_targets, resolve=resolve)
        self.webhook_flows = WebhookFlows(
            database=self.database,
            check_target=guard.check,
            rotation_overlap=timedelta(seconds=settings.webhooks.rotation_overlap),
        )
        self.webhooks = WebhookDispatcher(
            database=self.database,
            flows=self.webhook_flows,
            settings=settings.webhooks,
            guard=guard,
            clock=utc_now,
        )
        self.database.writer.listeners.append(self.webhooks.wake)
        self.ocpp = OcppServer(
            settings=settings.ocpp,
            security=settings.security,
            services=self.services,
            handlers=HANDLERS,
            database=self.database,
            metrics=self.metrics,
            passwords=self.passwords,
            counters=self.counters,
        )
        self.metrics.watch(self.metrics.connected_chargers, lambda: len(self.ocpp.chargers))
        self.metrics.watch(self.metrics.live_subscribers, lambda: len(self.live))
        self.offline = OfflineWatch(
            database=self.database,
            party=party,
            clock=utc_now,
            grace=settings.ocpp.offline_grace,
            long_term=settings.ocpp.long_term_offline,
            online=self.ocpp.chargers,
        )
        self.reservations = ReservationExpiry(database=self.database, clock=utc_now)
        self.commands = Commands(
            chargers=self.ocpp.chargers,
            database=self.database,
            check_request=self.ocpp.validators.check_request,
            clock=utc_now,
            queue_size=settings.ocpp.command_queue_size,
            call_timeout=settings.ocpp.call_timeout,
            metrics=self.metrics,
            passwords=self.passwords,
        )
        self.services.certificates = signing_of(settings.security, commands=self.commands)
        self.wallet.stops.commands = self.commands
        self.roaming: Roaming | None = None
        if settings.ocpi.port:
            self.roaming = Roaming(
                settings.ocpi,
                database=self.database,
                party=party,
                sessions=sessions,
                commands=self.commands,
                online=self.ocpp,
                call_timeout=settings.ocpp.call_timeout,
                on_reservations_changed=self.reservations.wake,
            )
        self.balancer = Balancer(
            database=self.database,
            commands=self.commands,
            online=self.ocpp.chargers,
            fanout=self.live,
            clock=utc_now,
            settings=settings.balancing,
            metrics=self.metrics,
        )
        circuit_flows = CircuitFlows(
            database=self.database, clock=utc_now, on_changed=self.balancer.wake
        )
        # The API serves from a thread and loop of its own (csms/api/home.py): API load
        # cannot starve chargers; what changes state still runs on this, the home, loop.
        self.home = Home()
        self.api_context = context = ApiContext(
            home=self.home,
            database=self.database,
            chargers=self.ocpp.chargers,
            commands=self.commands,
            sessions=sessions,
            locations=LocationFlows(database=self.database, party=party, online=self.ocpp.chargers),
            clock=utc_now,
            on_reservations_changed=self.reservations.wake,
            party=party,
            metrics=self.metrics,
            live=self.live,
            wallet=self.wallet,
            passwords=self.passwords,
            counters=self.counters,
            webhooks=self.webhook_flows,
            charger_flows=self.services.chargers,
            partners=self.roaming.partners if self.roaming is not None else None,
            circuits=circuit_flows,
        )
        self.api_app = api = create_api(
            context=context,
            token=settings.api.token,
            metrics_open_on_loopback=settings.api.metrics_open_on_loopback,
            dashboard=settings.dashboard,
            max_body_bytes=settings.api.max_body_bytes,
        )
        self.ingress = CommandIngress(
            url=settings.mqtt.url,
            topic_prefix=settings.mqtt.topic_prefix,
            commands=self.commands,
            publisher=self.publisher,
            shared=settings.cluster.enabled,
        )
        self.cluster = self._cluster_node() if settings.cluster.enabled else None
        context.cluster = self.cluster
        self._api = _ApiServer(
            uvicorn.Config(
                api,
                host=settings.api.host,
                port=settings.api.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                # Live streams end at shutdown (EventFanout.close); this bounds the rest.
                timeout_graceful_shutdown=2,
            )
        )
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()

    @property
    def ocpp_port(self) -> int:
        """The plain ws:// listener's port (profiles 0 and 1)."""
        return self.ocpp.port

    @property
    def ocpp_tls_port(self) -> int:
        """The wss:// listener's port (profiles 2 and 3)."""
        return self.ocpp.tls_port

    @property
    def api_port(self) -> int:
        return self._api.port

    @property
    def ocpi_port(self) -> int:
        """The OCPI listener's port (0 when it is off)."""
        return self.roaming.server.port if self.roaming is not None else 0

    def stop(self) -> None:
        """Ask `run` to shut down cleanly."""
        self._stop.set()

    async def run(self) -> None:
        """Migrate, serve until `stop`, then close chargers (1001), flush writes and events."""
        await self.database.migrate()
        broker = await ensure_broker(self.settings.mqtt.url, embedded=self.settings.mqtt.embedded)
        try:
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self.database.writer.run(), name="db-writer")
                if self.cluster is not None:
                    # docs/deployment.md: the timers and deliveries run on the leader only.
                    await self.cluster.start()
                    relay = tasks.create_task(self.cluster.run(), name="cluster")
                    expiry = webhooks = tasks.create_task(self.cluster.lead(), name="leader")
                    periodic: list[asyncio.Task[None]] = []
                else:
                    await self._end_lost_connections()
                    relay = tasks.create_task(self.relay.run(), name="outbox-relay")
                    expiry = tasks.create_task(self.reservations.run(), name="reservation-expiry")
                    periodic = [
                        tasks.create_task(self.offline.run(), name="offline-watch"),
                        tasks.create_task(self.renewal.run(), name="subscription-renewal"),
                    ]
                    if self.settings.balancing.enabled:
                        periodic.append(tasks.create_task(self.balancer.run(), name="balancer"))
                    webhooks = tasks.create_task(self.webhooks.run(), name="webhook-deliveries")
                ingress = tasks.create_task(self.ingress.run(), name="command-ingress")
                await self.ocpp.start()
                self.home.loop = asyncio.get_running_loop()
                # Two threads share the interpreter lock: a charger's wake-up waits at most
                # this long for the API thread to let go of it (Python's default is 5 ms).
                sys.setswitchinterval(GIL_SWITCH_INTERVAL)
                api = tasks.create_task(asyncio.to_thread(self._run_api), name="http-api")
                ocpi, pushes = None, None
                started = await _started(self._api, api)
                if started and self.roaming is not None:
                    ocpi = tasks.create_task(self.roaming.server.serve(), name="ocpi-listener")
                    if self.cluster is None:
                        pushes = tasks.create_task(self.roaming.push.run(), name="ocpi-push")
                    started = await _started(self.roaming.server, ocpi)
                if started:
                    self._warn_exposure()
                    self._log_ready(broker)
                    self.ready.set()
                    await self._stop.wait()
                ingress.cancel()
                for task in periodic:
                    task.cancel()
                await self._stop_roaming(ocpi, pushes)
                await self._shutdown(
                    api=api, writer=writer, relay=relay, expiry=expiry, webhooks=webhooks
                )
        finally:
            if self.roaming is not None:
                await self.roaming.client.close()
            await self.publisher.close()
            if broker is not None:
                await broker.stop()
            await self.database.dispose()
        log.info("csms_stopped")

    def _cluster_node(self) -> ClusterNode:
        """Cluster mode's parts (docs/deployment.md); the leader runs the periodic work."""
        node = ClusterNode(
            self.settings,
            database=self.database,
            relay=self.relay,
            chargers=self.services.chargers,
            online=self.ocpp.chargers,
            commands=self.commands,
            publisher=self.publisher,
            clock=utc_now,
        )
        node.leader_work += [
            ("reservation-expiry", self.reservations.run),
            ("offline-watch", self.offline.run),
            ("subscription-renewal", self.renewal.run),
            ("webhook-deliveries", self.webhooks.run),
        ]
        if self.settings.balancing.enabled:
            # One balancer per cluster: two would send competing profiles to one circuit.
            node.leader_work.append(("balancer", self.balancer.run))
            # It hears the other nodes' partitions from the broker, not only this node's.
            self.balancer.feeds.append(node.other_partitions)
            self.balancer.online = node.online_anywhere()
            node.leader_work.append(("balancer-feed", node.follow_other_partitions))
        if self.roaming is not None:
            node.leader_work.append(("ocpi-push", self.roaming.push.run))
        return node

    def _run_api(self) -> None:
        """The HTTP API's thread: its own event loop, its own engine for reads.

        The thread runs at a lower OS priority than the chargers' (Linux threads have their
        own nice value), so that on a busy core the kernel runs the charger side first.
        """
        nice = self.settings.api.thread_nice
        if nice:
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        asyncio.run(self._serve_api())

    async def _serve_api(self) -> None:
        await self.api_context.open_reader()
        try:
            await self._api.serve()
        finally:
            await self.api_context.close_reader()

    async def _end_lost_connections(self) -> None:
        # Before accepting connections: a charger shown connected now was connected to a
        # process that ended without a clean shutdown (docs/events.md, "Offline chargers").
        lost = await self.services.chargers.end_lost_connections(now=utc_now())
        if lost:
            log.warning("lost_connections_ended", chargers=lost)

    async def _stop_roaming(
        self, ocpi: asyncio.Task[None] | None, pushes: asyncio.Task[None] | None
    ) -> None:
        """Stop taking OCPI requests and pushing; what waits is sent at the next start."""
        if self.roaming is None:
            return
        self.roaming.commands.close()
        if pushes is not None:
            pushes.cancel()
        if ocpi is not None:
            self.roaming.server.should_exit = True
            try:
                async with asyncio.timeout(SHUTDOWN_GRACE / 2):
                    await ocpi
            except TimeoutError:
                ocpi.cancel()

    def _warn_exposure(self) -> None:
        """Loud, at every start: anyone on the network can act as a charger (issue 13)."""
        reasons = exposure_warnings(self.settings)
        if reasons:
            log.warning(
                "unsafe_configuration",
                risk="anyone who reaches the OCPP port can register identities or take over "
                "a charger's session",
                reasons=reasons,
                fix="docs/security.md, 'Production configuration'",
            )

    def _log_ready(self, broker: EmbeddedBroker | None) -> None:
        log.info(
            "csms_ready",
            ocpp_port=self.ocpp_port if self.settings.security.plain_listener else None,
            ocpp_tls_port=self.ocpp_tls_port if self.settings.security.tls_port else None,
            ocpp_transport=self.ocpp.transport,
            api_port=self.api_port,
            ocpi_url=self.roaming.base_url() if self.roaming is not None else None,
            database=self.database.engine.url.render_as_string(hide_password=True),
            mqtt=self.settings.mqtt.url,
            mqtt_broker="embedded" if broker is not None else "external",
        )

    async def _shutdown(
        self,
        *,
        api: asyncio.Task[None],
        writer: asyncio.Task[None],
        relay: asyncio.Task[None],
        expiry: asyncio.Task[None],
        webhooks: asyncio.Task[None],
    ) -> None:
        log.info("csms_stopping")
        expiry.cancel()
        try:
            # Exit within 10 s, even if a charger, the database or the broker hangs
            # (docs/architecture.md, "Stopping").
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await self.ocpp.close()
                # Live streams to browsers end, so that the API can close its connections.
                self.live.close()
                self._api.should_exit = True
                await api
                relay.cancel()
                if self.cluster is not None:
                    # Chargers are closed (1001): hand the partitions over and leave.
                    await self.cluster.drain(within=EVENT_FLUSH_TIMEOUT)
                else:
                    await self.relay.flush(within=EVENT_FLUSH_TIMEOUT)
                # Each webhook worker saves its cursor: what was delivered is not sent again.
                webhooks.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await webhooks
                self.database.writer.close()
                await writer
        except TimeoutError:
            log.error("shutdown_timed_out", grace_seconds=SHUTDOWN_GRACE)
            for task in (writer, relay, webhooks):
                task.cancel()
            # Cancelling `api` would not stop its thread, and the process waits for that
            # thread at exit: tell uvicorn to leave at once, without its graceful wait.
            self.live.close()
            self._api.should_exit = self._api.force_exit = True
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(API_FORCED_EXIT):
                    await api


async def _started(server: _ApiServer, task: asyncio.Task[None]) -> bool:
    """Wait until a uvicorn server listens; False when it stopped (could not bind: the
    TaskGroup re-raises its error)."""
    # uvicorn exposes only a `started` flag, no event to wait on.
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return not task.done()


def settle_collector() -> None:
    """Once started: the objects start-up left (the application, its SQLAlchemy and pydantic
    state, caches) out of the collector's sight, and young collections rarer.

    A full collection walks every object it tracks, on the event loop's thread: under P2's
    load (bench/persisted_inprocess.py) there was one every half second, 44-73 ms each with
    what start-up made after the imports (`csms.__main__` freezes those) in the oldest
    generation, every charger waiting. Frozen objects are still freed when their last
    reference goes; a cycle among them that becomes garbage later is never collected, and
    start-up's objects live as long as the process.
    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


async def serve(settings: Settings) -> None:
    """Run csms until SIGTERM or SIGINT, then shut down within 10 s (docs/architecture.md)."""
    csms = Csms(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, csms.stop)
    running = asyncio.ensure_future(csms.run())
    ready = asyncio.ensure_future(csms.ready.wait())
    await asyncio.wait((running, ready), return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        settle_collector()
    else:
        ready.cancel()
    await running
