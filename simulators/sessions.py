"""EV sessions, from plug-in to unplug: authorization, Start/StopTransaction, the scripted
visits of a scenario, and the central system's RemoteStart/RemoteStop/UnlockConnector."""

from __future__ import annotations

from typing import Any, Protocol

from .authorization import LocalAuthorization
from .clock import iso
from .metering import Metering
from .model import (
    Connector,
    EvSpec,
    Session,
    SessionRecord,
    SessionState,
    StopReason,
    whole_wh,
)
from .ocppj import CallError, CallTimeout, ConnectionLost
from .reservations import Reservations
from .scenario import PlannedSession
from .services import Services
from .smart import ProfileStore
from .status import StatusReporter
from .timers import Timer

__all__ = ["SessionServices", "Sessions"]

UNLOCK_UNPLUG_DELAY = 5.0  # simulated seconds: the driver takes the cable after an unlock


class SessionServices(Services, Protocol):
    """What sessions need besides the common services."""

    @property
    def online(self) -> bool:
        """Connected and not about to close: an Authorize can be sent."""
        ...

    @property
    def powered(self) -> bool: ...

    @property
    def stopping(self) -> bool:
        """The run is ending: no new sessions."""
        ...


class Sessions:
    """The EV sessions on the connectors, and the finished ones."""

    def __init__(
        self,
        services: SessionServices,
        connectors: list[Connector],
        *,
        status: StatusReporter,
        metering: Metering,
        authorization: LocalAuthorization,
        reservations: Reservations,
        profiles: ProfileStore,
        default_ev: EvSpec,
        remote_dwell: float | None,
        remote_unplug_after: float,
    ) -> None:
        self._services = services
        self._connectors = connectors
        self._status = status
        self._metering = metering
        self._authorization = authorization
        self._reservations = reservations
        self._profiles = profiles
        self.default_ev = default_ev
        self.remote_dwell = remote_dwell  # simulated seconds a remote-started EV stays
        self.remote_unplug_after = remote_unplug_after
        self.completed: list[SessionRecord] = []
        timers = services.timers
        timers.handle(Timer.DEPARTURE, self._departure_due)
        timers.handle(Timer.UNPLUG, self._unplug_due)
        timers.handle(Timer.ARRIVAL, self._arrival_due)

    @property
    def charging(self) -> int:
        """Connectors with a running transaction."""
        return sum(
            1
            for connector in self._connectors
            if connector.session and connector.session.state is SessionState.CHARGING
        )

    def transaction_on(self, connector_id: int) -> int | bool | None:
        """The running transaction's id on a connector, True if it has none yet (the Start
        is not answered), None if no transaction runs there."""
        if not 1 <= connector_id < len(self._connectors):
            return None
        session = self._connectors[connector_id].session
        if session is None or session.state is not SessionState.CHARGING:
            return None
        return session.transaction_id if session.transaction_id is not None else True

    def is_free_for(self, connector: Connector, id_tag: str, *, restart: bool = False) -> bool:
        """Whether a session for ``id_tag`` could begin on the connector now.

        With ``restart``, also after a stopped transaction whose EV is still plugged in
        (Finishing): OCPP 1.6 §4.9 allows Finishing -> Preparing when a user starts again.
        """
        whole_charger = self._connectors[0]
        if (
            connector.id == 0
            or connector.fault
            or whole_charger.fault
            or not connector.operative
            or not whole_charger.operative
        ):
            return False
        session = connector.session
        if session is not None and session.state is not SessionState.REFUSED:
            if not (restart and session.state is SessionState.STOPPED):
                return False
        return connector.reservation is None or connector.reservation.id_tag == id_tag

    # -- from plug-in to the transaction

    def plug_and_start(
        self,
        connector: Connector,
        now: float,
        id_tag: str,
        ev: EvSpec,
        *,
        authorize: bool,
        dwell: float | None,
        unplug_after: float,
        remote: bool,
        profile: dict[str, Any] | None = None,
    ) -> None:
        """The EV is plugged in and ``id_tag`` presented: authorize (or not), then start.

        Args:
            dwell: simulated seconds until the driver leaves (None: stays until told).
            unplug_after: simulated seconds between the stop and the unplug.
            profile: a TxProfile to apply to the transaction (RemoteStart).
        """
        connector.plugged = True
        session = Session(connector.id, id_tag, ev, unplug_after, remote)
        session.pending_profile = profile
        connector.session = session
        if dwell is not None:
            departure = self._services.clock.after(now, dwell)
            self._services.timers.start(Timer.DEPARTURE, departure, connector.id)
        self._status.refresh(connector)
        if authorize:
            self._authorize(connector, session, now)
        else:
            self._start_transaction(connector, session, now)

    def _authorize(self, connector: Connector, session: Session, now: float) -> None:
        services = self._services
        local_status = self._authorization.status_of(session.id_tag, clock=services.clock, now=now)
        # Still booting counts as online: the Authorize waits behind the BootNotification.
        if services.online:
            if self._authorization.pre_authorizes(local_status):
                self._start_transaction(connector, session, now)
                return

            def answered(result: dict[str, Any] | None, error: CallError | None) -> None:
                self._authorize_answered(connector, session, result, error)

            services.send_call("Authorize", {"idTag": session.id_tag}, answered)
            return
        self._decide_offline(connector, session, local_status, now)

    def _decide_offline(
        self, connector: Connector, session: Session, local_status: str | None, now: float
    ) -> None:
        if self._authorization.allows_offline(local_status):
            self._start_transaction(connector, session, now)
        else:
            self._refuse(connector, session, now)

    def _authorize_answered(
        self,
        connector: Connector,
        session: Session,
        result: dict[str, Any] | None,
        error: CallError | None,
    ) -> None:
        now = self._services.now
        if connector.session is not session or session.state is not SessionState.AUTHORIZING:
            return
        if error is not None or result is None:
            if isinstance(error, ConnectionLost | CallTimeout):
                local_status = self._authorization.status_of(
                    session.id_tag, clock=self._services.clock, now=now
                )
                self._decide_offline(connector, session, local_status, now)
            else:
                self._refuse(connector, session, now)
            return
        info = result.get("idTagInfo") or {}
        self._authorization.remember(session.id_tag, info)
        if info.get("status") == "Accepted":
            self._start_transaction(connector, session, now)
        else:
            self._refuse(connector, session, now)

    def _refuse(self, connector: Connector, session: Session, now: float) -> None:
        self._services.stats.auth_rejected += 1
        session.state = SessionState.REFUSED
        self._unplug_later(connector, session, now)
        self._status.refresh(connector)

    def _start_transaction(self, connector: Connector, session: Session, now: float) -> None:
        services = self._services
        session.state = SessionState.CHARGING
        session.meter_start = whole_wh(connector.register_wh)
        session.started_at = services.clock.sim(now)
        session.integrated_until = now
        session.register_at_last_sample = connector.register_wh
        payload: dict[str, Any] = {
            "connectorId": connector.id,
            "idTag": session.id_tag,
            "meterStart": session.meter_start,
            "timestamp": iso(session.started_at),
        }
        reservation_id = self._reservations.use(connector, session.id_tag)
        if reservation_id is not None:
            payload["reservationId"] = reservation_id

        def answered(result: dict[str, Any] | None, error: CallError | None) -> None:
            self._start_answered(connector, session, result)

        services.send_call(
            "StartTransaction", payload, answered, transactional=True, session=session
        )
        if session.pending_profile is not None:
            self._profiles.install(
                connector.id,
                session.pending_profile,
                session.started_at,
                True,
                to_sim=services.clock.sim_at_wall,
                scale=services.clock.speed,
            )
            session.pending_profile = None
        # Every session's power: a ChargePointMaxProfile is shared with the newcomer.
        self._metering.advance_all(now)
        self._metering.apply_limits(now)
        self._status.refresh(connector)
        self._metering.schedule_sample(connector, now)

    def _start_answered(
        self, connector: Connector, session: Session, result: dict[str, Any] | None
    ) -> None:
        if result is None:
            return  # noted by the queue; the session goes on locally
        services = self._services
        services.stats.transactions_started += 1
        transaction_id = result.get("transactionId")
        if isinstance(transaction_id, int):
            session.transaction_id = transaction_id
        info = result.get("idTagInfo") or {}
        self._authorization.remember(session.id_tag, info)
        if (
            info.get("status") != "Accepted"
            and services.config.get_bool("StopTransactionOnInvalidId")
            and connector.session is session
            and session.state is SessionState.CHARGING
        ):
            self.stop(connector, services.now, StopReason.de_authorized)

    # -- the end of a transaction

    def stop(
        self, connector: Connector, now: float, reason: StopReason, *, quiet: bool = False
    ) -> bool:
        """End the running transaction on ``connector``; False if there is none.

        An authorization still under way is abandoned instead. ``quiet`` leaves the status
        as it is, for when the caller derives it anew anyway.
        """
        session = connector.session
        if session is None:
            return False
        if session.state is SessionState.AUTHORIZING:
            session.state = SessionState.REFUSED
            return False
        if session.state is not SessionState.CHARGING:
            return False
        services = self._services
        self._metering.advance_all(now)
        session.power_w = 0.0
        session.meter_stop = whole_wh(connector.register_wh)
        session.stopped_at = services.clock.sim(now)
        session.reason = reason.value
        payload: dict[str, Any] = {
            "idTag": session.id_tag,
            "meterStop": session.meter_stop,
            "timestamp": iso(session.stopped_at),
            "reason": reason.value,
        }
        data = self._metering.transaction_data(connector, session, now)
        if data:
            payload["transactionData"] = data
        session.state = SessionState.STOPPED
        services.timers.cancel(Timer.METER_SAMPLE, connector.id)

        def answered(result: dict[str, Any] | None, error: CallError | None) -> None:
            self._stop_answered(session, result)

        services.send_call(
            "StopTransaction", payload, answered, transactional=True, session=session
        )
        services.stats.energy_wh += session.energy_wh
        self._profiles.end_transaction(connector.id)
        self._metering.apply_limits(now)  # its share of a ChargePointMax goes to the others
        if connector.pending_inoperative:
            connector.operative = False
            connector.pending_inoperative = False
        if not quiet:
            self._status.refresh(connector)
        return True

    def stop_all(self, now: float, reason: StopReason, *, quiet: bool = False) -> None:
        """Stop every running transaction."""
        for connector in self._connectors[1:]:
            self.stop(connector, now, reason, quiet=quiet)

    def _stop_answered(self, session: Session, result: dict[str, Any] | None) -> None:
        if result is not None:
            self._services.stats.transactions_stopped += 1
            self._authorization.remember(session.id_tag, result.get("idTagInfo") or {})
        self.completed.append(
            SessionRecord(
                connector_id=session.connector_id,
                id_tag=session.id_tag,
                transaction_id=session.transaction_id,
                meter_start=session.meter_start,
                meter_stop=session.meter_stop,
                energy_wh=session.energy_wh,
                started_at=session.started_at,
                stopped_at=session.stopped_at,
                reason=session.reason,
                soc_start=session.ev.soc_start,
                soc_end=session.soc,
                ev=session.ev,
                remote=session.remote,
            )
        )

    # -- leaving

    def _unplug_later(self, connector: Connector, session: Session, now: float) -> None:
        """The driver takes the cable ``unplug_after`` the stop, unless a departure is due."""
        timers = self._services.timers
        if not timers.is_set(Timer.DEPARTURE, connector.id):
            at = self._services.clock.after(now, session.unplug_after)
            timers.start(Timer.UNPLUG, at, connector.id)

    def _departure_due(self, connector_id: int, now: float) -> None:
        connector = self._connectors[connector_id]
        session = connector.session
        if session is None:
            self.unplug(connector, now)
            return
        if session.state is SessionState.AUTHORIZING:
            # the driver left before authorization came back
            self._services.stats.sessions_abandoned += 1
        if session.state is SessionState.CHARGING:
            self.stop(connector, now, StopReason.local)
        if session.state is SessionState.STOPPED:
            at = self._services.clock.after(now, session.unplug_after)
            self._services.timers.start(Timer.UNPLUG, at, connector.id)
        else:
            self.unplug(connector, now)

    def _unplug_due(self, connector_id: int, now: float) -> None:
        self.unplug(self._connectors[connector_id], now)

    def unplug(self, connector: Connector, now: float) -> None:
        """The EV leaves (EVDisconnected if its transaction still runs); the next scripted
        visit to the connector is scheduled."""
        session = connector.session
        if session is not None and session.state is SessionState.CHARGING:
            self.stop(connector, now, StopReason.ev_disconnected, quiet=True)
        timers = self._services.timers
        for timer in (Timer.DEPARTURE, Timer.UNPLUG, Timer.METER_SAMPLE):
            timers.cancel(timer, connector.id)
        was_plugged = connector.plugged or session is not None
        connector.session = None
        connector.plugged = False
        self._status.refresh(connector)
        if was_plugged:
            self._schedule_next_visit(connector, now)

    # -- scripted visits

    def _schedule_next_visit(self, connector: Connector, now: float) -> None:
        connector.next_visit = None
        if self._services.stopping or not connector.visits:
            return
        visit = connector.visits.popleft()
        connector.next_visit = visit
        at = self._services.clock.after(now, visit.arrival)
        self._services.timers.start(Timer.ARRIVAL, at, connector.id)

    def _arrival_due(self, connector_id: int, now: float) -> None:
        connector = self._connectors[connector_id]
        if connector.next_visit is not None:
            self.arrive(connector.next_visit, now)

    def arrive(self, visit: PlannedSession, now: float) -> None:
        """A scripted EV arrives; it is missed if the connector cannot take it."""
        connector = self._connectors[visit.connector_id]
        if connector.next_visit is visit:
            connector.next_visit = None
        services = self._services
        if services.stopping:
            return
        if (
            not services.powered
            or connector.plugged
            or not self.is_free_for(connector, visit.id_tag)
        ):
            services.stats.sessions_missed += 1
            self._schedule_next_visit(connector, now)
            return
        ev = EvSpec(visit.battery_wh, visit.ev_max_power_w, visit.soc_start, visit.soc_target)
        self.plug_and_start(
            connector,
            now,
            visit.id_tag,
            ev,
            authorize=visit.authorize,
            dwell=visit.dwell,
            unplug_after=visit.unplug_after,
            remote=False,
        )

    # -- handlers

    def remote_start(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """RemoteStartTransaction: a simulated session on the given or first free connector."""
        id_tag = payload["idTag"]
        profile = payload.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}
        services = self._services
        if services.stopping or not services.powered:
            return {"status": "Rejected"}
        target = self._remote_start_target(payload.get("connectorId"), id_tag)
        if target is None:
            return {"status": "Rejected"}
        chosen = target

        def start(later: float) -> None:
            if chosen.session is not None:  # a refused or stopped visit: replaced
                services.timers.cancel(Timer.UNPLUG, chosen.id)
                chosen.session = None
            self.plug_and_start(
                chosen,
                later,
                id_tag,
                self.default_ev,
                authorize=services.config.get_bool("AuthorizeRemoteTxRequests"),
                dwell=self.remote_dwell,
                unplug_after=self.remote_unplug_after,
                remote=True,
                profile=profile,
            )

        services.after_reply(start)
        return {"status": "Accepted"}

    def _remote_start_target(self, connector_id: int | None, id_tag: str) -> Connector | None:
        """The connector asked for, if a session can start there; without one, a free
        connector, else one whose EV is still plugged in after its transaction."""
        connectors = self._connectors
        if connector_id is not None:
            if not 1 <= connector_id < len(connectors):
                return None
            connector = connectors[connector_id]
            return connector if self.is_free_for(connector, id_tag, restart=True) else None
        for restart in (False, True):
            for connector in connectors[1:]:
                if self.is_free_for(connector, id_tag, restart=restart):
                    return connector
        return None

    def remote_stop(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """RemoteStopTransaction of a running transaction, by id."""
        transaction_id = payload["transactionId"]
        for connector in self._connectors[1:]:
            session = connector.session
            if (
                session is not None
                and session.state is SessionState.CHARGING
                and session.transaction_id == transaction_id
            ):
                self._stop_remotely_after_reply(connector)
                return {"status": "Accepted"}
        return {"status": "Rejected"}

    def _stop_remotely_after_reply(self, connector: Connector) -> None:
        self._services.after_reply(lambda later: self._stop_remotely(connector, later))

    def _stop_remotely(self, connector: Connector, now: float) -> None:
        session = connector.session
        if session is None:
            return
        self.stop(connector, now, StopReason.remote)
        self._unplug_later(connector, session, now)

    def unlock_connector(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """UnlockConnector: stops the transaction (UnlockCommand); the EV leaves shortly."""
        connector_id = payload["connectorId"]
        if not 1 <= connector_id < len(self._connectors):
            return {"status": "NotSupported"}
        connector = self._connectors[connector_id]

        def unlock(later: float) -> None:
            self.stop(connector, later, StopReason.unlock_command)
            if connector.plugged:
                timers = self._services.timers
                timers.cancel(Timer.DEPARTURE, connector.id)
                at = self._services.clock.after(later, UNLOCK_UNPLUG_DELAY)
                timers.start(Timer.UNPLUG, at, connector.id)

        self._services.after_reply(unlock)
        return {"status": "Unlocked"}
