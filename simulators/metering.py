"""Energy and meter values: the energy each session draws under its limits, and the
MeterValues that report it (sampled, clock-aligned, triggered, and in StopTransaction)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final, Protocol

from .clock import iso
from .model import Connector, Registration, Session, SessionState, whole_wh
from .services import Services
from .smart import Electrical, ProfileStore, Quirk
from .status import StatusReporter
from .timers import Timer

__all__ = ["MIN_PERIOD", "Metering", "MeteringServices"]

MIN_PERIOD: Final = 0.01  # real seconds: a floor for periodic timers at extreme speeds


class MeteringServices(Services, Protocol):
    """What metering needs besides the common services."""

    @property
    def connected(self) -> bool: ...

    @property
    def registration(self) -> Registration: ...


class Metering:
    """The energy registers of the connectors and the MeterValues about them."""

    def __init__(
        self,
        services: MeteringServices,
        connectors: list[Connector],
        *,
        profiles: ProfileStore,
        electrical: Electrical,
        status: StatusReporter,
    ) -> None:
        self._services = services
        self._connectors = connectors
        self._profiles = profiles
        self._electrical = electrical
        self._status = status
        services.timers.handle(Timer.METER_SAMPLE, self._sample_due)
        services.timers.handle(Timer.CLOCK_ALIGNED_METER, self._aligned_due)

    # -- energy

    def offered_w(self, connector_id: int, now: float) -> float:
        """The power limit in force on a connector (hardware and charging profiles)."""
        session = self._connectors[connector_id].session if connector_id else None
        running = session is not None and session.state is SessionState.CHARGING
        limit, _ = self._profiles.limit_w(
            connector_id,
            self._services.clock.sim(now),
            session.started_at if session is not None and running else None,
            running,
        )
        return limit

    def update_power(self, connector: Connector, session: Session, now: float) -> None:
        """Set the session's power from its limit now and the EV's curve."""
        limit = self._drawable(connector, session, self._services.clock.sim(now))[0]
        session.limit_w = limit
        session.power_w = session.curve.power_w(session.soc, limit, session.soc_target)

    def _drawable(
        self, connector: Connector, session: Session, moment: float
    ) -> tuple[float, float]:
        """What the car may draw at ``moment`` (W) and when that may change: the limit on
        its own phases, 0 below its minimum current or the profile's minChargingRate (the
        car pauses rather than charge below it), the hardware when the charger overdraws."""
        profiles, ev = self._profiles, session.ev
        limit, change = profiles.limit_w(
            connector.id, moment, session.started_at, True, phases=ev.phases
        )
        if Quirk.OVERDRAWS in profiles.quirks:
            electrical = self._electrical
            return electrical.max_power_w * min(
                ev.phases, electrical.phases
            ) / electrical.phases, change
        floor = ev.min_current_a * self._electrical.voltage * ev.phases
        floor = max(floor, profiles.min_rate_w(connector.id, moment, session.started_at, ev.phases))
        return (0.0 if limit + 1e-9 < floor else limit), change

    def advance(self, connector: Connector, now: float) -> None:
        """Integrate the energy delivered since the session was last brought up to date,
        one stretch per limit in force (a profile period can change the limit midway)."""
        session = connector.session
        if (
            session is None
            or session.state is not SessionState.CHARGING
            or now <= session.integrated_until
        ):
            return
        clock = self._services.clock
        moment = clock.sim(session.integrated_until)
        end = clock.sim(now)
        while moment < end:
            limit, change = self._drawable(connector, session, moment)
            stretch_end = min(end, change) if change > moment else end
            step = session.curve.charge(
                session.soc, stretch_end - moment, limit, session.soc_target
            )
            session.soc = step.soc
            session.energy_wh += step.energy_wh
            connector.register_wh += step.energy_wh
            session.power_w = step.power_w
            session.limit_w = limit
            moment = stretch_end
        session.integrated_until = now

    def advance_all(self, now: float) -> None:
        """Bring every session up to date (before its limits change)."""
        for connector in self._connectors[1:]:
            self.advance(connector, now)

    def apply_limits(self, now: float) -> None:
        """The charging profiles changed: running sessions take their new power."""
        self._share_charger_max(now)
        for connector in self._connectors[1:]:
            session = connector.session
            if session is not None and session.state is SessionState.CHARGING:
                self.update_power(connector, session, now)
                self._status.refresh(connector)

    def _share_charger_max(self, now: float) -> None:
        """Split the ChargePointMaxProfile over the charging connectors, max-min fair on what
        each car would draw (OCPP 1.6 §3.13.1: it limits the charger as a whole)."""
        profiles = self._profiles
        profiles.shares.clear()
        moment = self._services.clock.sim(now)
        total, _ = profiles.limit_w(0, moment, None, False)
        wants: dict[int, float] = {}
        for connector in self._connectors[1:]:
            session = connector.session
            if session is not None and session.state is SessionState.CHARGING:
                limit = self._drawable(connector, session, moment)[0]
                wants[connector.id] = session.curve.power_w(session.soc, limit, session.soc_target)
        if sum(wants.values()) <= total:
            return
        left, open_ids = total, sorted(wants, key=lambda i: wants[i])
        while open_ids:
            share = left / len(open_ids)
            connector_id = open_ids.pop(0)
            given = min(wants[connector_id], share)
            profiles.shares[connector_id] = given
            left -= given

    # -- sampled meter values

    def schedule_sample(self, connector: Connector, now: float) -> None:
        """Next MeterValueSampleInterval sample of a running transaction (simulated time)."""
        services = self._services
        interval = services.config.get_int("MeterValueSampleInterval")
        session = connector.session
        if interval > 0 and session is not None and session.state is SessionState.CHARGING:
            at = now + max(interval / services.clock.speed, MIN_PERIOD)
            services.timers.start(Timer.METER_SAMPLE, at, connector.id)
        else:
            services.timers.cancel(Timer.METER_SAMPLE, connector.id)

    def reschedule_samples(self, now: float) -> None:
        """MeterValueSampleInterval changed."""
        for connector in self._connectors[1:]:
            self.schedule_sample(connector, now)

    def _sample_due(self, connector_id: int, now: float) -> None:
        connector = self._connectors[connector_id]
        session = connector.session
        if session is None or session.state is not SessionState.CHARGING:
            return
        self.advance(connector, now)
        self.update_power(connector, session, now)
        self._status.refresh(connector)
        measurands = self._services.config.get_list("MeterValuesSampledData")
        self._send(connector, now, "Sample.Periodic", measurands, transactional=True)
        self.schedule_sample(connector, now)

    # -- clock-aligned meter values

    def schedule_aligned(self, now: float) -> None:
        """Next ClockAlignedDataInterval boundary of the simulated clock."""
        services = self._services
        interval = services.config.get_int("ClockAlignedDataInterval")
        if interval > 0 and services.registration is Registration.ACCEPTED and services.connected:
            sim = services.clock.sim(now)
            upcoming = (math.floor(sim / interval) + 1) * interval
            at = max(services.clock.real(upcoming), now + MIN_PERIOD)
            services.timers.start(Timer.CLOCK_ALIGNED_METER, at)
        else:
            services.timers.cancel(Timer.CLOCK_ALIGNED_METER)

    def _aligned_due(self, _connector_id: int, now: float) -> None:
        measurands = self._services.config.get_list("MeterValuesAlignedData")
        for connector in self._connectors[1:]:
            self.advance(connector, now)
            self._send(connector, now, "Sample.Clock", measurands, transactional=True)
        self.schedule_aligned(now)

    def send_triggered(self, connector_id: int, now: float) -> None:
        """MeterValues that TriggerMessage asked for."""
        connector = self._connectors[connector_id]
        self.advance(connector, now)
        measurands = self._services.config.get_list("MeterValuesSampledData")
        self._send(connector, now, "Trigger", measurands, transactional=False)

    # -- building the messages

    def transaction_data(
        self, connector: Connector, session: Session, now: float
    ) -> list[dict[str, Any]]:
        """StopTransaction's transactionData (StopTxnSampledData), empty if none is wanted."""
        measurands = self._services.config.get_list("StopTxnSampledData")
        if not measurands:
            return []
        begin = [
            {
                "value": str(session.meter_start),
                "context": "Transaction.Begin",
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            }
        ]
        end = self._sampled_values(connector, measurands, "Transaction.End")
        data = [{"timestamp": iso(session.started_at), "sampledValue": begin}]
        if end:
            data.append({"timestamp": self._services.clock.stamp(now), "sampledValue": end})
        return data

    def _send(
        self,
        connector: Connector,
        now: float,
        context: str,
        measurands: list[str],
        *,
        transactional: bool,
    ) -> None:
        values = self._sampled_values(connector, measurands, context)
        if not values:
            return
        services = self._services
        payload: dict[str, Any] = {
            "connectorId": connector.id,
            "meterValue": [{"timestamp": services.clock.stamp(now), "sampledValue": values}],
        }
        session = connector.session if connector.id else None
        in_transaction = session is not None and session.state is SessionState.CHARGING
        if in_transaction and not transactional and session is not None:
            if session.transaction_id is not None:
                payload["transactionId"] = session.transaction_id
        queued_with_transaction = transactional and in_transaction
        services.send_call(
            "MeterValues",
            payload,
            transactional=queued_with_transaction,
            session=session if queued_with_transaction else None,
        )

    def _sampled_values(
        self, connector: Connector, measurands: Iterable[str], context: str
    ) -> list[dict[str, Any]]:
        session = connector.session if connector.id else None
        charging = session is not None and session.state is SessionState.CHARGING
        power = session.power_w if session is not None and charging else 0.0
        limit = self.offered_w(connector.id, self._services.now) if connector.id else 0.0
        electrical = self._electrical
        watts_per_amp = electrical.voltage * electrical.phases
        if connector.id:
            register = connector.register_wh
        else:
            register = sum(other.register_wh for other in self._connectors[1:])
        values: list[dict[str, Any]] = []
        for measurand in measurands:
            unit: str | None
            location: str | None = None
            if measurand == "Energy.Active.Import.Register":
                value, unit = str(whole_wh(register)), "Wh"
            elif measurand == "Energy.Active.Import.Interval":
                since = session.register_at_last_sample if session is not None else register
                value, unit = f"{max(0.0, register - since):.1f}", "Wh"
            elif measurand == "Power.Active.Import":
                value, unit = f"{power:.1f}", "W"
            elif measurand == "Power.Offered":
                value, unit = f"{limit:.1f}", "W"
            elif measurand == "Current.Import":
                # Per phase, as real AC chargers report it: a single-phase car draws on L1.
                car = session.ev.phases if session is not None else electrical.phases
                per_phase = power / (electrical.voltage * car) if power else 0.0
                for phase in range(electrical.phases):
                    amps = per_phase if phase < car else 0.0
                    values.append(
                        {
                            "value": f"{amps:.2f}",
                            "context": context,
                            "measurand": measurand,
                            "phase": f"L{phase + 1}",
                            "unit": "A",
                        }
                    )
                continue
            elif measurand == "Current.Offered":
                value, unit = f"{limit / watts_per_amp:.2f}", "A"
            elif measurand == "Voltage":
                value, unit = f"{electrical.voltage:.1f}", "V"
            elif measurand == "Frequency":
                value, unit = "50.0", None
            elif measurand == "Temperature":
                value, unit, location = "25.0", "Celsius", "Body"
            elif measurand == "SoC":
                if session is None or not charging:
                    continue
                value, unit, location = f"{session.soc * 100.0:.0f}", "Percent", "EV"
            else:
                continue
            sampled: dict[str, Any] = {"value": value, "context": context, "measurand": measurand}
            if unit is not None:
                sampled["unit"] = unit
            if location is not None:
                sampled["location"] = location
            values.append(sampled)
        if session is not None:
            session.register_at_last_sample = register
        return values
