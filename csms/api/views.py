"""Rows to API bodies: one function per resource, shared by every route that shows it."""

from csms.api.schemas import (
    ChargePointOut,
    ConnectorOut,
    CostOut,
    IdTagOut,
    MeterValueOut,
    TransactionOut,
    TransactionStatus,
)
from csms.core.money import from_units
from csms.core.ocpi import ocpi_evse_status
from csms.core.rates import margin
from csms.core.registration import RegistrationStatus
from csms.core.transactions import SAMPLE_AFTER_STOP, energy_wh
from csms.store.tables import (
    ChargePoint,
    Connector,
    IdTag,
    MeterValue,
    Transaction,
    TransactionPricing,
)

# (vendor, vendorErrorCode) -> what it means
ErrorTexts = dict[tuple[str, str], str]


def charge_point_out(
    row: ChargePoint,
    connectors: list[Connector],
    *,
    connected: bool,
    error_texts: ErrorTexts | None = None,
) -> ChargePointOut:
    if connected:
        network = "available"
    elif row.connected_at is None:
        network = "never_connected"
    else:
        network = "temporarily_unavailable"
    texts = error_texts or {}
    return ChargePointOut(
        id=row.id,
        name=row.name,
        connected=connected,
        last_seen=row.last_seen,
        boot_status=row.boot_status,
        vendor=row.vendor,
        model=row.model,
        serial_number=row.serial_number or row.charge_box_serial_number,
        firmware_version=row.firmware_version,
        network_status=network,
        security_profile=row.security_profile,
        password_set=row.password_hash is not None,
        password_hex_compat=row.password_hex_compat,
        registration_status=RegistrationStatus(row.registration_status),
        location_id=row.location_id,
        local_list_version=row.local_list_version,
        connectors=[
            ConnectorOut(
                connector_id=c.connector_id,
                status=c.status,
                error_code=c.error_code,
                info=c.info,
                vendor_error_code=c.vendor_error_code,
                vendor_error_text=texts.get((c.vendor_id or row.vendor or "", c.vendor_error_code))
                if c.vendor_error_code
                else None,
                ocpi_status=ocpi_evse_status(c.status, online=connected).value,
                updated_at=c.updated_at,
            )
            for c in connectors
            if c.charge_point_id == row.id
        ],
    )


def id_tag_out(row: IdTag) -> IdTagOut:
    return IdTagOut(
        id_tag=row.id_tag,
        status=row.status,
        expiry_date=row.expiry_date,
        parent_id_tag=row.parent_id_tag,
        user_id=row.user_id,
    )


def transaction_out(row: Transaction, pricing: TransactionPricing | None = None) -> TransactionOut:
    assert row.id is not None
    out = _transaction_out(row)
    if pricing is None:
        return out
    out.tariff_id = pricing.tariff_id
    revenue = None
    if pricing.cost_excl is not None:
        revenue = from_units(pricing.cost_excl)
        out.cost = CostOut(
            currency=pricing.currency,
            excl_vat=float(revenue),
            incl_vat=None if pricing.cost_incl is None else float(from_units(pricing.cost_incl)),
        )
    # Bought with a tariff or without: no tariff, nothing sold (docs/tariffs.md).
    if pricing.purchase_cost is not None:
        purchase = from_units(pricing.purchase_cost)
        out.purchase_cost = float(purchase)
        out.margin = float(margin(revenue, purchase))
    return out


def _transaction_out(row: Transaction) -> TransactionOut:
    assert row.id is not None
    return TransactionOut(
        transaction_id=row.id,
        charge_point_id=row.charge_point_id,
        connector_id=row.connector_id,
        id_tag=row.id_tag if row.id_tag is not None else row.stop_id_tag,
        meter_start=row.meter_start,
        meter_stop=row.meter_stop,
        start_timestamp=row.start_timestamp,
        stop_timestamp=row.stop_timestamp,
        stop_reason=row.stop_reason,
        energy_wh=energy_wh(
            meter_start=row.meter_start,
            meter_stop=row.meter_stop,
            last_register_wh=row.last_register_wh,
        ),
        status=TransactionStatus.ACTIVE
        if row.stop_timestamp is None
        else TransactionStatus.COMPLETED,
        flags=row.flags,
    )


def meter_value_out(row: MeterValue) -> MeterValueOut:
    """A stored sample; `after_stop` joins its flags when it is later than its stop."""
    assert row.timestamp is not None
    return MeterValueOut(
        timestamp=row.timestamp,
        value=row.value,
        measurand=row.measurand,
        unit=row.unit,
        context=row.context,
        location=row.location,
        phase=row.phase or None,
        format=row.format,
        flags=[*row.flags, SAMPLE_AFTER_STOP] if row.after_stop else list(row.flags),
    )
