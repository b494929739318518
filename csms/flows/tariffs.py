"""Tariffs applied to sessions: resolved at the start, the running cost, the final cost.

docs/tariffs.md, "Which tariff a session gets": the driver's subscription plan, then the
driver's tariff group, the EVSE, the location and the default tariff; the first that
exists and is valid at the start wins. The version found is kept with the transaction
(`transaction_pricing`), so a later edit never reprices a running or finished session.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.meter import ENERGY_IMPORT_REGISTER, Sample
from csms.core.rates import rate_candidates, session_purchase
from csms.core.session import Party, SessionFacts
from csms.core.tariff_ocpi import PricedSession, tariff_from_ocpi
from csms.core.tariffs import (
    SECONDS_PER_HOUR,
    Tariff,
    TariffSource,
    UsagePeriod,
    price_session,
    resolve_tariff,
)
from csms.core.usage import Limits, limits_of, usage_periods
from csms.core.zones import location_zone
from csms.store import rates, tariffs, transactions, wallet
from csms.store.db import Database
from csms.store.tables import ChargePoint, Location, Transaction, TransactionPricing

log = structlog.get_logger("csms.tariffs")
# What pricing odd data can raise; it is logged, never allowed to refuse a charger message.
PRICING_ERRORS = (ArithmeticError, ValueError, KeyError, OverflowError)
# Measurands the running cost needs; the rest of a MeterValues is not kept in memory.
_PRICED_MEASURANDS = frozenset({ENERGY_IMPORT_REGISTER, "Power.Active.Import", "Current.Import"})
# Tariff assignments by (scope, target); None: there is none.
Assignments = Mapping[tuple[str, str], str | None]
# Running sessions kept in memory per process (the oldest are read again when needed).
MAX_RUNNING = 50_000
# Tariff versions kept parsed per process (the oldest are parsed again when needed).
MAX_PARSED = 256


@dataclass
class RunningSession:
    """What the running cost of one session needs, kept between its MeterValues."""

    tariff: Tariff
    data: dict[str, Any]
    zone: tzinfo
    limits: Limits
    prepaid: bool
    user_id: str | None
    samples: list[Sample] = field(default_factory=list)


@dataclass(frozen=True)
class Settlement:
    """A stopped session's cost (None without a tariff), its parking time, and what its
    energy cost to buy (None without an electricity rate), with a tariff or without."""

    priced: PricedSession | None
    parking_s: int
    user_id: str | None
    purchase_cost: Decimal | None = None


def zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", "UTC"))


class SessionPricing:
    """Resolves, keeps and applies the tariff of every session."""

    def __init__(self, *, database: Database, party: Party) -> None:
        self._database = database
        self._party = party
        self._running: OrderedDict[int, RunningSession | None] = OrderedDict()
        self._parsed: OrderedDict[tuple[str, int], tuple[dict[str, Any], Tariff, Limits]] = (
            OrderedDict()
        )

    def parsed(self, tariff_id: str, version: int, data: dict[str, Any]) -> tuple[Tariff, Limits]:
        """A tariff version's Tariff and Limits, parsed once: every Start resolving it and
        every Stop priced with it would parse the same OCPI object again.

        Kept with the data it was parsed from and used only while that is equal, so a
        version's data changing (it does not: csms.store.tariffs keeps versions) cannot
        price with a stale parse."""
        key = (tariff_id, version)
        kept = self._parsed.get(key)
        if kept is not None and kept[0] == data:
            self._parsed.move_to_end(key)
            return kept[1], kept[2]
        tariff = tariff_from_ocpi(data)
        limits = limits_of(tariff)
        self._parsed[key] = (data, tariff, limits)
        if len(self._parsed) > MAX_PARSED:
            self._parsed.popitem(last=False)
        return tariff, limits

    # -- at the start --------------------------------------------------------------------

    async def resolve(
        self,
        session: AsyncSession,
        *,
        charge_point_id: str,
        connector_id: int,
        user_id: str | None,
        location_id: str | None,
        at: datetime,
        known: Assignments | None = None,
    ) -> tuple[TariffSource, int, dict[str, Any], tzinfo] | None:
        """The tariff a session there, for that user, would start with: (source, version,
        OCPI Tariff, the location's zone), or None when no tariff applies.

        `known`: tariff assignments read already (`assignments`), absent ones as None.
        """
        candidates = await self._candidates(
            session,
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            user_id=user_id,
            location_id=location_id,
            at=at,
            known=known or {},
        )
        rows = await tariffs.current_tariffs(session, candidates)
        by_source = {TariffSource(source): row for source, row in rows}
        chosen = resolve_tariff(
            (
                (source, self.parsed(row.id, row.version, row.data)[0])
                for source, row in by_source.items()
            ),
            at=at,
        )
        if chosen is None:
            return None
        source, _ = chosen
        row = by_source[source]
        return source, row.version, row.data, await self._zone(session, location_id)

    async def _candidates(
        self,
        session: AsyncSession,
        *,
        charge_point_id: str,
        connector_id: int,
        user_id: str | None,
        location_id: str | None,
        at: datetime,
        known: Assignments,
    ) -> list[tuple[str, str | None]]:
        found: list[tuple[str, str | None]] = []
        if user_id is not None:
            subscription = await wallet.active_subscription(session, user_id=user_id, at=at)
            if subscription is not None:
                plan = await wallet.get_plan(session, subscription.plan_id)
                if plan is not None:
                    found.append(
                        (
                            TariffSource.SUBSCRIPTION,
                            await _group_tariff(session, plan.tariff_group_id),
                        )
                    )
            account = await wallet.get_account(session, user_id)
            if account is not None and account.tariff_group_id is not None:
                found.append(
                    (TariffSource.USER, await _group_tariff(session, account.tariff_group_id))
                )
        for source, scope, target in _assignment_keys(charge_point_id, connector_id, location_id):
            if (scope, target) in known:
                found.append((source, known[scope, target]))
            else:
                found.append(
                    (source, await tariffs.assigned_tariff(session, scope=scope, target=target))
                )
        # The first EVSE candidate that exists (the connector's, then the charger's) counts.
        return _first_per_source(found)

    async def assignments(
        self, session: AsyncSession, places: Sequence[tuple[str, int, str | None]]
    ) -> Assignments:
        """The tariff assignments sessions at these (charger, connector, location) would look
        up, read with one query; absent ones as None (for `resolve`'s `known`)."""
        keys = {
            (scope, target) for place in places for _, scope, target in _assignment_keys(*place)
        }
        return await tariffs.assignments_of(session, keys)

    async def _zone(self, session: AsyncSession, location_id: str | None) -> tzinfo:
        location = None if location_id is None else await session.get(Location, location_id)
        data = {} if location is None else location.data
        return location_zone(data.get("time_zone"), data.get("country"))

    async def start(
        self,
        session: AsyncSession,
        *,
        row: Transaction,
        location_id: str | None,
        now: datetime,
        known: Assignments | None = None,
        circuits: rates.Circuits | None = None,
    ) -> RunningSession | None:
        """Resolve and keep the tariff of a transaction just created (inside its write).

        `known` and `circuits`: the tariff assignments (`assignments`) and the connectors'
        circuits (`rates.circuits_from`) read already for a batch's Starts.
        """
        assert row.id is not None
        assert row.start_timestamp is not None
        user_id = None if row.id_tag is None else await wallet.user_of_tag(session, row.id_tag)
        resolved = await self.resolve(
            session,
            charge_point_id=row.charge_point_id,
            connector_id=row.connector_id,
            user_id=user_id,
            location_id=location_id,
            at=row.start_timestamp,
            known=known,
        )
        if resolved is None:
            self._remember(row.id, None)
            await self._keep_circuit(session, row=row, now=now, circuits=circuits)
            return None
        source, version, data, zone = resolved
        account = None if user_id is None else await wallet.get_account(session, user_id)
        prepaid = account is not None and account.prepaid
        await tariffs.record_pricing(
            session,
            transaction_id=row.id,
            resolved=tariffs.ResolvedTariff(
                tariff_id=str(data["id"]), version=version, source=source.value, data=data
            ),
            user_id=user_id,
            prepaid=prepaid,
            currency=str(data["currency"]),
            time_zone=zone_name(zone),
            now=now,
            # The circuit at the start (docs/tariffs.md, "Which rate a session is bought at").
            circuit_id=await _circuit(session, row, circuits),
        )
        tariff, limits = self.parsed(str(data["id"]), version, data)
        running = RunningSession(
            tariff=tariff,
            data=data,
            zone=zone,
            limits=limits,
            prepaid=prepaid,
            user_id=user_id,
        )
        self._remember(row.id, running)
        return running

    async def _keep_circuit(
        self,
        session: AsyncSession,
        *,
        row: Transaction,
        now: datetime,
        circuits: rates.Circuits | None,
    ) -> None:
        # A session without a tariff is bought too, at its circuit's rate at the start
        # (docs/tariffs.md, "Purchase cost and margin"); off every circuit, nothing to keep.
        assert row.id is not None
        circuit_id = await _circuit(session, row, circuits)
        if circuit_id is not None:
            await tariffs.record_circuit(
                session,
                transaction_id=row.id,
                circuit_id=circuit_id,
                currency=self._party.currency,
                now=now,
            )

    def _remember(self, transaction_id: int, running: RunningSession | None) -> None:
        self._running[transaction_id] = running
        self._running.move_to_end(transaction_id)
        while len(self._running) > MAX_RUNNING:
            self._running.popitem(last=False)

    def forget(self, transaction_id: int) -> None:
        self._running.pop(transaction_id, None)

    # -- while it runs -------------------------------------------------------------------

    async def running(self, transaction_id: int) -> RunningSession | None:
        """The session's pricing: kept in memory, or read once (after a restart)."""
        if transaction_id in self._running:
            return self._running[transaction_id]
        loaded = await self._database.read(lambda session: _load(session, transaction_id))
        self._remember(transaction_id, loaded)
        return loaded

    async def running_cost(
        self, facts: SessionFacts, samples: Sequence[Sample], *, at: datetime
    ) -> tuple[PricedSession, RunningSession] | None:
        """The cost so far of a priced session, from its readings up to `at`.

        The connector's statuses are not followed while it runs, so the running cost
        counts all the time as charging time; the CDR settles parking (docs/tariffs.md).
        """
        running = await self.running(facts.transaction_id)
        if running is None:
            return None
        running.samples.extend(s for s in samples if s.measurand in _PRICED_MEASURANDS)
        end = max(at, facts.start)
        try:
            periods = usage_periods(
                start=facts.start,
                end=end,
                meter_start_wh=facts.meter_start_wh,
                meter_stop_wh=None,
                samples=running.samples,
                limits=running.limits,
            )
            costs = price_session(running.tariff, periods, end=end, zone=running.zone)
        except PRICING_ERRORS as exc:
            # A MeterValues is never refused over its price (docs/tariffs.md).
            log.error("running_cost_failed", transaction_id=facts.transaction_id, error=repr(exc))
            return None
        return PricedSession(tariff=running.data, costs=costs), running

    # -- at the stop ---------------------------------------------------------------------

    async def settle(
        self,
        session: AsyncSession,
        *,
        row: Transaction,
        facts: SessionFacts,
        now: datetime,
        known: Mapping[int, TransactionPricing] | None = None,
        statuses: Sequence[tuple[datetime, str]] | None = None,
        chargers: Mapping[str, ChargePoint | None] | None = None,
    ) -> Settlement:
        """The final cost of a stopped transaction, kept with it (inside its write).

        Read already, or read here: `known`, the pricing of transactions
        (`tariffs.pricing_of`); `statuses`, its connector's (`tariffs.connector_statuses`);
        `chargers`, its charger's row (None: no such charger), as the Stop group read it.
        """
        assert row.id is not None
        assert facts.stop is not None
        self.forget(row.id)
        if known is None:
            pricing = await tariffs.get_pricing(session, row.id)
        else:
            pricing = known.get(row.id)
        if statuses is None:
            statuses = await tariffs.connector_statuses(
                session,
                charge_point_id=row.charge_point_id,
                connector_id=row.connector_id,
                start=facts.start,
                stop=facts.stop,
            )
        data = None if pricing is None else await _tariff_of(session, pricing)
        tariff, limits = (None, Limits()) if data is None else self._parsed_of(pricing, data)
        periods = usage_periods(
            start=facts.start,
            end=facts.stop,
            meter_start_wh=facts.meter_start_wh,
            meter_stop_wh=facts.meter_stop_wh,
            samples=facts.samples,
            statuses=statuses,
            limits=limits,
        )
        parking_s = int(sum((p.parking_h for p in periods), Decimal(0)) * SECONDS_PER_HOUR)
        if pricing is None or pricing.tariff_id is None:
            return await self._settle_untariffed(
                session,
                row=row,
                facts=facts,
                periods=periods,
                pricing=pricing,
                parking_s=parking_s,
                now=now,
                chargers=chargers,
            )
        if data is None or tariff is None:
            return Settlement(priced=None, parking_s=parking_s, user_id=None)
        zone = location_zone(pricing.time_zone, None)
        try:
            costs = price_session(tariff, periods, end=facts.stop, zone=zone)
            purchase = await _purchase_cost(
                session,
                row=row,
                facts=facts,
                periods=periods,
                circuit_id=pricing.circuit_id,
                currency=costs.currency,
                chargers=chargers,
            )
        except PRICING_ERRORS as exc:
            # A StopTransaction is never refused over its price: the CDR goes out without a
            # cost (tariffId null) and the error is logged for the operator (docs/tariffs.md).
            log.error("session_pricing_failed", transaction_id=row.id, error=repr(exc))
            return Settlement(priced=None, parking_s=parking_s, user_id=None)
        priced = PricedSession(tariff=data, costs=costs)
        await tariffs.record_cost(
            session,
            transaction_id=row.id,
            excl=costs.total.excl_vat,
            incl=costs.total.incl_vat,
            purchase_cost=purchase,
            parking_s=parking_s,
            now=now,
        )
        return Settlement(
            priced=priced, parking_s=parking_s, user_id=pricing.user_id, purchase_cost=purchase
        )

    def _parsed_of(
        self, pricing: TransactionPricing | None, data: dict[str, Any]
    ) -> tuple[Tariff, Limits]:
        # `_tariff_of` found data: the pricing names its tariff version.
        assert pricing is not None
        assert pricing.tariff_id is not None
        assert pricing.tariff_version is not None
        return self.parsed(pricing.tariff_id, pricing.tariff_version, data)

    async def _settle_untariffed(
        self,
        session: AsyncSession,
        *,
        row: Transaction,
        facts: SessionFacts,
        periods: Sequence[UsagePeriod],
        pricing: TransactionPricing | None,
        parking_s: int,
        now: datetime,
        chargers: Mapping[str, ChargePoint | None] | None = None,
    ) -> Settlement:
        """A session without a tariff sold nothing, but its energy was bought: its purchase
        cost, at the circuit it started on (kept by `_keep_circuit`) or its site.

        `pricing`: the transaction's pricing row, None when it has none."""
        assert row.id is not None
        try:
            purchase = await _purchase_cost(
                session,
                row=row,
                facts=facts,
                periods=periods,
                circuit_id=None if pricing is None else pricing.circuit_id,
                currency=facts.currency,
                chargers=chargers,
            )
        except PRICING_ERRORS as exc:
            log.error("session_purchase_failed", transaction_id=row.id, error=repr(exc))
            purchase = None
        if pricing is None and purchase is None:
            # No row and no cost: `record_purchase` would make none (and read for it).
            return Settlement(priced=None, parking_s=parking_s, user_id=None)
        await tariffs.record_purchase(
            session, transaction_id=row.id, purchase_cost=purchase, currency=facts.currency, now=now
        )
        return Settlement(priced=None, parking_s=parking_s, user_id=None, purchase_cost=purchase)


async def _circuit(
    session: AsyncSession, row: Transaction, circuits: rates.Circuits | None
) -> str | None:
    """The circuit the transaction's connector is on now (docs/tariffs.md, "Which rate a
    session is bought at"): read already for its batch, or read here."""
    place = (row.charge_point_id, row.connector_id)
    if circuits is not None and place in circuits:
        return circuits[place]
    return await rates.circuit_of(session, charge_point_id=place[0], connector_id=place[1])


async def _charger(
    session: AsyncSession, charge_point_id: str, chargers: Mapping[str, ChargePoint | None] | None
) -> ChargePoint | None:
    """The charger's row: as its group read it (None there: it does not exist), or read here."""
    if chargers is not None and charge_point_id in chargers:
        return chargers[charge_point_id]
    return await session.get(ChargePoint, charge_point_id)


async def _tariff_of(session: AsyncSession, pricing: TransactionPricing) -> dict[str, Any] | None:
    """The OCPI Tariff version a transaction started with; None without a tariff."""
    if pricing.tariff_id is None or pricing.tariff_version is None:
        return None
    return await tariffs.get_tariff_version(
        session, tariff_id=pricing.tariff_id, version=pricing.tariff_version
    )


async def _purchase_cost(
    session: AsyncSession,
    *,
    row: Transaction,
    facts: SessionFacts,
    periods: Sequence[UsagePeriod],
    circuit_id: str | None,
    currency: str,
    chargers: Mapping[str, ChargePoint | None] | None = None,
) -> Decimal | None:
    """What the session's energy cost to buy at the most specific electricity rate: its
    circuit's (at the start) or a circuit's above it, else its site's; None without one,
    or when that rate is not in the session's `currency` (csms.core.rates.session_purchase).
    """
    assert facts.stop is not None
    charger = await _charger(session, row.charge_point_id, chargers)
    location_id = None if charger is None else charger.location_id
    path = [] if circuit_id is None else await rates.circuit_path(session, circuit_id)
    rate = await rates.rate_for(
        session,
        candidates=rate_candidates(circuits=path, location_id=location_id),
        start=facts.start,
        end=facts.stop,
    )
    if rate is not None and rate.currency != currency:
        # Not an error of the session: the operator changed [ocpi] currency after making
        # the rate. No conversion, no purchase cost (docs/tariffs.md).
        log.warning(
            "purchase_currency_mismatch",
            transaction_id=row.id,
            rate_currency=rate.currency,
            currency=currency,
        )
    return session_purchase(rate, periods, end=facts.stop, currency=currency)


async def _group_tariff(session: AsyncSession, group_id: str) -> str | None:
    group = await tariffs.get_group(session, group_id)
    return None if group is None else group.tariff_id


def _assignment_keys(
    charge_point_id: str, connector_id: int, location_id: str | None
) -> list[tuple[TariffSource, str, str]]:
    """The assignments a session there looks up, in order: (source, scope, target)."""
    keys = [
        (TariffSource.EVSE, "evse", f"{charge_point_id}*{connector_id}"),
        (TariffSource.EVSE, "evse", f"{charge_point_id}*0"),
    ]
    if location_id is not None:
        keys.append((TariffSource.LOCATION, "location", location_id))
    keys.append((TariffSource.DEFAULT, "default", ""))
    return keys


def _first_per_source(found: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    seen: set[str] = set()
    kept: list[tuple[str, str | None]] = []
    for source, tariff_id in found:
        if tariff_id is None or source in seen:
            continue
        seen.add(source)
        kept.append((source, tariff_id))
    return kept


async def _load(session: AsyncSession, transaction_id: int) -> RunningSession | None:
    pricing = await tariffs.get_pricing(session, transaction_id)
    if pricing is None:
        return None
    data = await _tariff_of(session, pricing)
    if data is None:
        return None
    tariff = tariff_from_ocpi(data)
    stored = await transactions.transaction_samples(session, transaction_id)
    return RunningSession(
        tariff=tariff,
        data=data,
        zone=location_zone(pricing.time_zone, None),
        limits=limits_of(tariff),
        prepaid=pricing.prepaid,
        user_id=pricing.user_id,
        samples=[
            Sample(
                timestamp=m.timestamp,
                value=m.value,
                measurand=m.measurand,
                unit=m.unit,
                context=m.context,
                location=m.location,
                phase=m.phase,
                format=m.format,
            )
            for m in stored
            if m.measurand in _PRICED_MEASURANDS and m.timestamp is not None
        ],
    )
