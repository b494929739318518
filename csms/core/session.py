"""One charging session as csms knows it, and who we are: the facts every event builder needs.

Shared by the OCPI and OICP mappings (`core/ocpi/`, `core/oicp.py`), the application
layer and the event builders, so none of them depends on another for these types.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from csms.core.meter import ENERGY_IMPORT_REGISTER, Sample, readable_wh

WH_PER_KWH = Decimal(1000)
# Phase values of a register that is the total over all phases (OCPP 1.6 §7.31).
TOTAL_PHASES = ("", "N")
# Phase values of one phase's reading, summed for the total; line-to-line values (L1-L2)
# are not a share of the total (OCPP 1.6 §7.31 Phase).
_LINE_PHASES = ("L1", "L2", "L3", "L1-N", "L2-N", "L3-N")
# Scales to kW and to A of the units a power or current reading may have (§7.48 UnitOfMeasure).
POWER_UNITS_KW = {"W": Decimal("0.001"), "kW": Decimal(1)}
CURRENT_UNITS_A = {"A": Decimal(1)}
# What a session's OCPI Session and CDR, its OICP CDR and its price read of its samples
# (csms.core.ocpi.periods, csms.core.oicp, csms.core.usage): the energy import register,
# power, current and state of charge. Its other samples (voltage, temperature, ...) change
# none of them, so a stopped session's are not read back (tests/events/test_build.py).
SESSION_MEASURANDS = frozenset(
    {ENERGY_IMPORT_REGISTER, "Power.Active.Import", "Current.Import", "SoC"}
)


@dataclass(frozen=True)
class Party:
    """Our OCPI identity (config section [ocpi]): who we are to roaming partners."""

    country_code: str
    party_id: str
    currency: str


class AuthMethod(StrEnum):
    """mod_cdrs §AuthMethod enum."""

    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class TokenType(StrEnum):
    """mod_tokens §TokenType enum."""

    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


@dataclass(frozen=True)
class TokenFacts:
    """Who owns the idTag, for OCPI ``cdr_token`` (OCPI 2.2.1 mod_cdrs §CdrToken class).

    OCPP 1.6 carries none of it (docs/events.md, "Mapping decisions"). ``country_code``/
    ``party_id`` are the eMSP's that owns the token (the CPO's own for its own cards);
    ``contract_id`` comes from the token registry.
    """

    country_code: str
    party_id: str
    contract_id: str
    type: TokenType = TokenType.RFID


@dataclass(frozen=True)
class SessionFacts:
    """What csms knows about one OCPP transaction, enough for an OCPI Session and CDR.

    Energies are in Wh as OCPP sends them; times are aware datetimes. ``samples`` are
    the transaction's sampled values (``csms.core.meter.Sample``, defaults applied) and
    drive the charging periods. The OCPI Session id is ``str(transaction_id)``.
    """

    transaction_id: int
    charge_point_id: str
    connector_id: int
    id_tag: str
    start: datetime
    meter_start_wh: int
    country_code: str
    party_id: str
    location_id: str
    currency: str
    stop: datetime | None = None
    meter_stop_wh: int | None = None
    latest_register_wh: Decimal | int | float | None = None
    samples: tuple[Sample, ...] = ()
    # None: evse_uid_or_derived(charge_point_id, connector_id) (one virtual EVSE per connector)
    evse_uid: str | None = None
    # One OCPI Connector with id "1" per virtual EVSE (docs/events.md, "Mapping decisions")
    ocpi_connector_id: str = "1"
    # None: one of the CPO's own RFID cards (contract_id = id_tag)
    token: TokenFacts | None = None
    auth_method: AuthMethod = AuthMethod.WHITELIST
    authorization_reference: str | None = None
    meter_id: str | None = None
    # StartTransaction answered Invalid/Blocked/Expired/ConcurrentTx: OCPI status INVALID
    # (OCPI 2.2.1 mod_sessions §SessionStatus enum; docs/events.md, "Mapping decisions")
    invalid: bool = False

    @property
    def session_id(self) -> str:
        """The OCPI Session id (CiString(36)): the OCPP transactionId."""
        return str(self.transaction_id)


def parse_decimal(text: str) -> Decimal | None:
    # OCPP 1.6 §7.45: SampledValue.value is a string; parse it as a decimal.
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def is_measured(sample: Sample) -> bool:
    # format=SignedData values are a signed data block, not a number; Inlet is the grid
    # side of the charger, not what reached the EV (OCPP 1.6 §7.45 SampledValue).
    return sample.format == "Raw" and sample.location != "Inlet"


def import_register_wh(sample: Sample) -> Decimal | None:
    """A total active import register reading in Wh, or None for any other sample."""
    if sample.measurand != ENERGY_IMPORT_REGISTER or not is_measured(sample):
        return None
    if sample.phase not in TOTAL_PHASES:
        return None
    number = parse_decimal(sample.value)
    if number is None:
        return None
    if sample.unit == "kWh":
        number *= WH_PER_KWH
    elif sample.unit not in ("Wh", ""):
        return None
    # 1e400 is a finite Decimal, but no meter's: it would overflow every sum and quantize.
    return number if readable_wh(float(number)) else None


def phase_totals(
    samples: Iterable[Sample], *, measurand: str, units: Mapping[str, Decimal]
) -> list[tuple[datetime, Decimal]]:
    """A measurand's total per timestamp, in time order, scaled by `units`: the phase-less
    reading where there is one, else the sum of the per-phase readings.

    Samples that are not measured values (`is_measured`), not numbers, or in a unit
    missing from `units` are skipped. Shared by the OCPI charging periods
    (csms.core.ocpi.periods) and the priced ones (csms.core.usage).
    """
    total: dict[datetime, Decimal] = {}
    by_phase: dict[datetime, Decimal] = {}
    for sample in samples:
        if sample.measurand != measurand or not is_measured(sample):
            continue
        scale = units.get(sample.unit)
        number = parse_decimal(sample.value)
        if scale is None or number is None:
            continue
        if sample.phase in TOTAL_PHASES:
            total[sample.timestamp] = number * scale
        elif sample.phase in _LINE_PHASES:
            by_phase[sample.timestamp] = by_phase.get(sample.timestamp, Decimal(0)) + number * scale
    return sorted({**by_phase, **total}.items())


@dataclass(frozen=True)
class ChargerAtLocation:
    """A charger linked to a location, with its connectors' live status."""

    charge_point_id: str
    connector_spec: dict[str, Any] | None
    # (connectorId >= 1, OCPP status, when it last changed)
    connectors: Sequence[tuple[int, str | None, datetime | None]]
    online: bool
