"""What every route needs: the database, the live chargers, commands, and shared parameters."""

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Protocol, TypeVar

from fastapi import HTTPException, Path, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.passwords import PasswordHasher
from csms.core.session import Party
from csms.events.fanout import EventFanout
from csms.flows.chargers import ChargerFlows
from csms.flows.circuits import CircuitFlows
from csms.flows.commands import Commands
from csms.flows.locations import LocationFlows
from csms.flows.partners import PartnerFlows
from csms.flows.sessions import SessionFlows
from csms.flows.wallet import WalletFlows
from csms.flows.webhooks import WebhookFlows
from csms.metrics import Metrics
from csms.store.db import Database
from csms.store.tables import ChargePoint


class ClusterView(Protocol):
    """This node in cluster mode, as GET /api/v1/cluster needs it (csms/cluster/node.py)."""

    @property
    def node_id(self) -> str: ...

    @property
    def partition_count(self) -> int: ...


T = TypeVar("T")


class LiveConnection(Protocol):
    """A live charger connection, as far as the API needs it."""

    async def close(self, *, code: int = 1000, reason: str = "") -> None: ...


class LiveChargers(Protocol):
    """The connection registry, as far as the API needs it."""

    def __contains__(self, charge_point_id: object) -> bool: ...

    def __len__(self) -> int: ...

    def get(self, charge_point_id: str, /) -> LiveConnection | None: ...


class ApiContext:
    def __init__(
        self,
        *,
        database: Database,
        chargers: LiveChargers,
        commands: Commands,
        sessions: SessionFlows,
        locations: LocationFlows,
        clock: Callable[[], datetime],
        on_reservations_changed: Callable[[], None],
        party: Party,
        metrics: Metrics | None = None,
        live: EventFanout | None = None,
        wallet: WalletFlows | None = None,
        passwords: PasswordHasher | None = None,
        counters: Mapping[str, int] | None = None,
        webhooks: WebhookFlows,
        charger_flows: ChargerFlows,
        partners: PartnerFlows | None = None,
        circuits: CircuitFlows | None = None,
    ) -> None:
        self.party = party
        # Circuit edits; without a balancer (tests of other parts) they only write.
        self.circuits = circuits or CircuitFlows(
            database=database, clock=clock, on_changed=lambda _ids: None
        )
        # OCPI roaming partners; None while the OCPI listener is off (ocpi.port = 0).
        self.partners = partners
        # Cluster mode: this node (GET /api/v1/cluster); None on a standalone node.
        self.cluster: ClusterView | None = None
        self.webhooks = webhooks
        self.charger_flows = charger_flows
        self.metrics = metrics or Metrics()
        # Events as the relay publishes them, for the dashboard's live stream.
        self.live = EventFanout() if live is None else live
        self.wallet = wallet
        # Hashes the passwords the API sets (AuthorizationKeys with the server's pepper).
        self.passwords = passwords or PasswordHasher()
        # The OCPP server's counters (TLS handshake failures, throttled logins, ...).
        self.counters: Mapping[str, int] = counters if counters is not None else Counter()
        self.sessions = sessions
        self.locations = locations
        self.database = database
        self.chargers = chargers
        self.commands = commands
        self.clock = clock
        self.on_reservations_changed = on_reservations_changed

    def connected(self, row: ChargePoint) -> bool:
        """Whether the charger is connected: here, or in cluster mode to any node (the
        database records the connections of every node, docs/deployment.md)."""
        if row.id in self.chargers:
            return True
        if self.cluster is None or row.connected_at is None:
            return False
        return row.disconnected_at is None or row.disconnected_at < row.connected_at

    async def read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run a query; a database failure is a StoreError, answered 503 by the app."""
        return await self.database.read(query)

    async def write(self, job: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Commit a change that has no events (plain registry data); StoreError -> 503."""
        return await self.database.writer.submit(job)


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


INT32_MAX = 2**31 - 1  # OCPP ids (transactionId, connectorId...) are 32-bit in practice

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX, description="items to skip")]
TransactionIdPath = Annotated[
    int, Path(ge=-INT32_MAX, le=INT32_MAX, description="the OCPP transactionId")
]
IdentityPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=48,
        # csms/core/identity.py: what a charger's URL can name (docs/ocpp.md, "Connecting").
        pattern=r'^[^/\s\x00-\x1f\x7f#<>\\"`{}]+$',
        description="the charge point identity, as in its OCPP URL",
    ),
]
IdTagPath = Annotated[str, Path(min_length=1, max_length=20, description="OCPP IdToken")]
