"""OCPP 1.6 wire payloads (camelCase JSON) <-> typed core messages: the one place that reads
an OCPP key. Handlers convert, call the application layer, and answer; nothing below them
(`csms/flows/`, `csms/store/`, `csms/events/`) sees a wire payload.

Payloads reaching here have passed the 1.6 JSON schema (`schemas.py`), so required keys are
present and typed; the defaults the specification gives for absent keys are applied here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from csms.core.charger import BootInfo, ConnectorStatusReport
from csms.core.clock import ParsedTime, format_utc, parse_timestamp
from csms.core.meter import ENERGY_IMPORT_REGISTER, Sample, value_flags
from csms.core.transactions import StartKey, StopRequest

# Identifiers a lenient normalisation must never cut short: a shortened idTag could match
# another driver's tag (OCPP 1.6 §7.28 IdToken). An over-long one stays an error.
NEVER_SHORTENED = frozenset({"idTag", "parentIdTag"})


def boot_info(payload: Mapping[str, Any]) -> BootInfo:
    """BootNotification.req (OCPP 1.6 §6.2)."""
    return BootInfo(
        vendor=payload["chargePointVendor"],
        model=payload["chargePointModel"],
        serial_number=payload.get("chargePointSerialNumber"),
        charge_box_serial_number=payload.get("chargeBoxSerialNumber"),
        firmware_version=payload.get("firmwareVersion"),
        iccid=payload.get("iccid"),
        imsi=payload.get("imsi"),
        meter_type=payload.get("meterType"),
        meter_serial_number=payload.get("meterSerialNumber"),
    )


def status_report(payload: Mapping[str, Any], *, received: datetime) -> ConnectorStatusReport:
    """StatusNotification.req (OCPP 1.6 §6.47)."""
    # §4.9: without a timestamp, the time of receipt is assumed.
    when = parse_timestamp(payload.get("timestamp", format_utc(received)), received=received)
    return ConnectorStatusReport(
        connector_id=payload["connectorId"],
        status=payload["status"],
        error_code=payload["errorCode"],
        timestamp=when.value,
        info=payload.get("info"),
        vendor_id=payload.get("vendorId"),
        vendor_error_code=payload.get("vendorErrorCode"),
    )


def samples(meter_values: Iterable[Mapping[str, Any]], *, received: datetime) -> list[Sample]:
    """Flatten OCPP MeterValue[] into samples, applying the defaults of §7.45 SampledValue."""
    # On every MeterValues of the protocol path: the time and its flags are worked out once
    # per meterValue, not per sample (docs/performance.md, "Where a call's CPU time goes").
    found: list[Sample] = []
    for meter_value in meter_values:
        when = parse_timestamp(meter_value.get("timestamp"), received=received)
        timestamp, flags = when.value, when.flags
        for sampled in meter_value.get("sampledValue", ()):
            get = sampled.get
            measurand = get("measurand", ENERGY_IMPORT_REGISTER)
            unit = get("unit")
            value = get("value", "")
            sample = _sample(
                timestamp=timestamp,
                value=value if type(value) is str else str(value),
                measurand=measurand,
                unit=unit if unit is not None else _default_unit(measurand),
                context=get("context", "Sample.Periodic"),
                location=get("location", "Outlet"),
                phase=get("phase", ""),
                format=get("format", "Raw"),
                flags=flags,
            )
            # value_flags reads only an import register: the others are not asked.
            if measurand == ENERGY_IMPORT_REGISTER and (unreadable := value_flags(sample)):
                sample = replace(sample, flags=sample.flags + unreadable)
            found.append(sample)
    return found


def _sample(
    *,
    timestamp: datetime,
    value: str,
    measurand: str,
    unit: str,
    context: str,
    location: str,
    phase: str,
    format: str,
    flags: tuple[str, ...],
) -> Sample:
    """`Sample(...)` at a third of the cost: a frozen dataclass's __init__ sets each field
    through object.__setattr__, and every MeterValues builds four or more (bench/analysis.md).
    It takes every field of Sample, no more (tests/ocpp16/test_convert.py)."""
    sample: Sample = object.__new__(Sample)
    sample.__dict__.update(
        timestamp=timestamp,
        value=value,
        measurand=measurand,
        unit=unit,
        context=context,
        location=location,
        phase=phase,
        format=format,
        flags=flags,
    )
    return sample


def _default_unit(measurand: str) -> str:
    # §7.45: unit defaults to Wh, which only makes sense for the energy measurands.
    return "Wh" if measurand.startswith("Energy") else ""


def start_key(
    charge_point_id: str, payload: Mapping[str, Any], *, received: datetime
) -> tuple[StartKey, ParsedTime]:
    """StartTransaction.req (OCPP 1.6 §6.49): its dedup key, and how its time parsed."""
    started = parse_timestamp(payload["timestamp"], received=received)
    key = StartKey(
        charge_point_id=charge_point_id,
        connector_id=payload["connectorId"],
        id_tag=payload["idTag"],
        timestamp=started.value,
        meter_start=payload["meterStart"],
    )
    return key, started


def stop_request(
    charge_point_id: str, payload: Mapping[str, Any], *, received: datetime
) -> StopRequest:
    """StopTransaction.req (OCPP 1.6 §6.51)."""
    return StopRequest(
        charge_point_id=charge_point_id,
        transaction_id=payload["transactionId"],
        id_tag=payload.get("idTag"),
        # None when poison.repair_stop found it unreadable.
        meter_stop=payload["meterStop"],
        stopped=parse_timestamp(payload["timestamp"], received=received),
        # OCPP-J errata §2.6: reason may be absent and then means Local.
        reason=payload.get("reason"),
        samples=samples(payload.get("transactionData", ()), received=received),
    )


def vendor_and_model(payload: Any) -> tuple[str | None, str | None]:
    """The vendor and model a BootNotification.req names, read before it is validated:
    they choose the charger's leniency rule (docs/ocpp.md, "Tolerant mode")."""
    if not isinstance(payload, Mapping):
        return None, None
    vendor, model = payload.get("chargePointVendor"), payload.get("chargePointModel")
    return (
        vendor if isinstance(vendor, str) else None,
        model if isinstance(model, str) else None,
    )


# SecWP ExtendedTriggerMessage names some messages differently from the action they start.
_EXTENDED_TRIGGERS = {
    "SignChargePointCertificate": ("SignCertificate",),
    "FirmwareStatusNotification": ("SignedFirmwareStatusNotification",),
}
_TRIGGER_ACTIONS = ("TriggerMessage", "ExtendedTriggerMessage")


def triggered_actions(
    action: str, payload: Mapping[str, Any], answer: Mapping[str, Any]
) -> tuple[str, ...]:
    """The messages a trigger the charger accepted asks it to send, or () (OCPP 1.6 §5.17
    TriggerMessage, and SecWP ExtendedTriggerMessage). A charger that is not accepted yet
    may send those all the same (OCPP 1.6 §4.2)."""
    if action not in _TRIGGER_ACTIONS or answer.get("status") != "Accepted":
        return ()
    requested = payload.get("requestedMessage")
    if not isinstance(requested, str):
        return ()
    if action == "ExtendedTriggerMessage":
        return _EXTENDED_TRIGGERS.get(requested, (requested,))
    return (requested,)
