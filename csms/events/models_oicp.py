"""Strict pydantic models of the Hubject OICP 2.3 objects csms emits (CPO side).

From ``hubject/oicp`` ``OICP-2.3/OICP 2.3 CPO``: 02_CPO_Services_and_Operations
(eRoamingChargeDetailRecord_V2.2, eRoamingPushEvseStatus_V2.1) and 03_CPO_Data_Types,
cross-checked with the OpenAPI in ``hubject/oicp-cpo-2.3-api-doc`` (``src/schemas``).
Python attributes are snake_case; the JSON names are the spec's PascalCase aliases,
and only those are accepted on input. Strictness is as in models_ocpi: unknown fields
and naive datetimes fail; energies are ``Decimal`` with at most 3 decimals ("Decimal
(,3)"), emitted as JSON numbers. Date/Time values keep their offset (the CDR best
practice wants the station's real time zone) and UTC is written ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)

from csms.core.oicp import (
    EVCO_ID_PATTERN,
    EVSE_ID_PATTERN,
    HASH_VALUE_PATTERN,
    OPERATOR_ID_PATTERN,
    PROVIDER_ID_PATTERN,
    SESSION_ID_PATTERN,
    UID_PATTERN,
    ActionType,
    HashFunction,
    LegacyHashFunction,
    MeteringStatus,
    OicpEvseStatus,
    RfidType,
)
from csms.events.models_base import (
    StrictModel,
    datetime_text_parser,
    format_datetime,
    number_parser,
    require_aware,
    to_json_dict,
)

__all__ = [
    "ActionType",
    "CalibrationLawVerification",
    "ChargeDetailRecord",
    "EvseStatusRecord",
    "HashFunction",
    "HashedPin",
    "Identification",
    "LegacyHashData",
    "LegacyHashFunction",
    "MeterValueInBetween",
    "MeteringStatus",
    "OicpEvseStatus",
    "OperatorEvseStatus",
    "PlugAndChargeIdentification",
    "PushEvseStatus",
    "QrCodeIdentification",
    "RemoteIdentification",
    "RfidIdentification",
    "RfidMifareFamilyIdentification",
    "RfidType",
    "SignedMeteringValues",
    "to_json_dict",
]

EvseId = Annotated[str, StringConstraints(pattern=EVSE_ID_PATTERN)]
OperatorId = Annotated[str, StringConstraints(pattern=OPERATOR_ID_PATTERN)]
ProviderId = Annotated[str, StringConstraints(pattern=PROVIDER_ID_PATTERN)]
EvcoId = Annotated[str, StringConstraints(pattern=EVCO_ID_PATTERN)]
Uid = Annotated[str, StringConstraints(pattern=UID_PATTERN)]
SessionId = Annotated[str, StringConstraints(pattern=SESSION_ID_PATTERN)]
HashValue = Annotated[str, StringConstraints(pattern=HASH_VALUE_PATTERN)]


def _text(max_length: int) -> Any:
    return StringConstraints(max_length=max_length)


# RFC 3339 with Z or an offset (fromisoformat takes both).
_parse_datetime_text = datetime_text_parser(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})",
    "an OICP Date/Time is RFC 3339 with Z or an offset",
)
_parse_number = number_parser("an OICP decimal is a JSON number")


DateTime = Annotated[
    datetime,
    BeforeValidator(_parse_datetime_text),
    AfterValidator(require_aware),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
]
Kwh = Annotated[
    Decimal,
    BeforeValidator(_parse_number),
    Field(decimal_places=3),
    PlainSerializer(float, return_type=float, when_used="json"),
]


# --- EVSE status (eRoamingPushEvseStatus_V2.1) -----------------------------------------------


class EvseStatusRecord(StrictModel):
    """03_CPO_Data_Types §EvseStatusRecordType: both fields mandatory."""

    evse_id: EvseId = Field(alias="EvseID")
    evse_status: OicpEvseStatus = Field(alias="EvseStatus")


class OperatorEvseStatus(StrictModel):
    """03_CPO_Data_Types §OperatorEvseStatusType."""

    operator_id: OperatorId = Field(alias="OperatorID")
    operator_name: Annotated[str, _text(100)] | None = Field(default=None, alias="OperatorName")
    evse_status_record: list[EvseStatusRecord] = Field(alias="EvseStatusRecord")


class PushEvseStatus(StrictModel):
    """02_CPO_Services_and_Operations §eRoamingPushEvseStatus Message."""

    action_type: ActionType = Field(alias="ActionType")
    operator_evse_status: OperatorEvseStatus = Field(alias="OperatorEvseStatus")


# --- Identification (03_CPO_Data_Types §IdentificationType) ----------------------------------


class RfidMifareFamilyIdentification(StrictModel):
    """§RFIDmifarefamilyIdentificationType."""

    uid: Uid = Field(alias="UID")


class RfidIdentification(StrictModel):
    """§RFIDIdentificationType."""

    uid: Uid = Field(alias="UID")
    evco_id: EvcoId | None = Field(default=None, alias="EvcoID")
    rfid: RfidType = Field(alias="RFID")
    printed_number: Annotated[str, _text(150)] | None = Field(default=None, alias="PrintedNumber")
    expiry_date: DateTime | None = Field(default=None, alias="ExpiryDate")


class LegacyHashData(StrictModel):
    """§LegacyHashDataType."""

    function: LegacyHashFunction = Field(alias="Function")
    salt: Annotated[str, _text(100)] | None = Field(default=None, alias="Salt")
    value: Annotated[str, _text(20)] | None = Field(default=None, alias="Value")


class HashedPin(StrictModel):
    """§HashedPINType."""

    value: HashValue = Field(alias="Value")
    function: HashFunction = Field(alias="Function")
    legacy_hash_data: LegacyHashData | None = Field(default=None, alias="LegacyHashData")


class QrCodeIdentification(StrictModel):
    """§QRCodeIdentificationType."""

    evco_id: EvcoId = Field(alias="EvcoID")
    hashed_pin: HashedPin | None = Field(default=None, alias="HashedPIN")
    pin: Annotated[str, _text(20)] | None = Field(default=None, alias="PIN")


class PlugAndChargeIdentification(StrictModel):
    """§PlugAndChargeIdentificationType."""

    evco_id: EvcoId = Field(alias="EvcoID")


class RemoteIdentification(StrictModel):
    """§RemoteIdentificationType."""

    evco_id: EvcoId = Field(alias="EvcoID")


class Identification(StrictModel):
    """§IdentificationType: "One of the following five options MUST be provided"."""

    rfid_mifare_family_identification: RfidMifareFamilyIdentification | None = Field(
        default=None, alias="RFIDMifareFamilyIdentification"
    )
    rfid_identification: RfidIdentification | None = Field(default=None, alias="RFIDIdentification")
    qr_code_identification: QrCodeIdentification | None = Field(
        default=None, alias="QRCodeIdentification"
    )
    plug_and_charge_identification: PlugAndChargeIdentification | None = Field(
        default=None, alias="PlugAndChargeIdentification"
    )
    remote_identification: RemoteIdentification | None = Field(
        default=None, alias="RemoteIdentification"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [
            self.rfid_mifare_family_identification,
            self.rfid_identification,
            self.qr_code_identification,
            self.plug_and_charge_identification,
            self.remote_identification,
        ]
        if sum(option is not None for option in given) != 1:
            raise ValueError("exactly one of the five identification options is required")
        return self


# --- ChargeDetailRecord (eRoamingChargeDetailRecord_V2.2) ------------------------------------


class MeterValueInBetween(StrictModel):
    """The JSON shape of "List Meter Value (Decimal (,3))" in the OICP 2.3 OpenAPI."""

    meter_values: list[Kwh] = Field(alias="meterValues")


class SignedMeteringValues(StrictModel):
    """03_CPO_Data_Types §SignedMeteringValuesType."""

    signed_metering_value: Annotated[str, _text(3000)] | None = Field(
        default=None, alias="SignedMeteringValue"
    )
    metering_status: MeteringStatus | None = Field(default=None, alias="MeteringStatus")


class CalibrationLawVerification(StrictModel):
    """03_CPO_Data_Types §CalibrationLawVerificationType."""

    calibration_law_certificate_id: Annotated[str, _text(100)] | None = Field(
        default=None, alias="CalibrationLawCertificateID"
    )
    public_key: Annotated[str, _text(1000)] | None = Field(default=None, alias="PublicKey")
    metering_signature_url: Annotated[str, _text(200)] | None = Field(
        default=None, alias="MeteringSignatureUrl"
    )
    metering_signature_encoding_format: Annotated[str, _text(50)] | None = Field(
        default=None, alias="MeteringSignatureEncodingFormat"
    )
    signed_metering_values_verification_instruction: Annotated[str, _text(400)] | None = Field(
        default=None, alias="SignedMeteringValuesVerificationInstruction"
    )


class ChargeDetailRecord(StrictModel):
    """02_CPO_Services_and_Operations §eRoamingChargeDetailRecord Message."""

    session_id: SessionId = Field(alias="SessionID")
    cpo_partner_session_id: Annotated[str, _text(250)] | None = Field(
        default=None, alias="CPOPartnerSessionID"
    )
    emp_partner_session_id: Annotated[str, _text(250)] | None = Field(
        default=None, alias="EMPPartnerSessionID"
    )
    # §ProductIDType: standard values or "a string of 50 characters maximum length".
    partner_product_id: Annotated[str, _text(50)] | None = Field(
        default=None, alias="PartnerProductID"
    )
    evse_id: EvseId = Field(alias="EvseID")
    identification: Identification = Field(alias="Identification")
    charging_start: DateTime = Field(alias="ChargingStart")
    charging_end: DateTime = Field(alias="ChargingEnd")
    session_start: DateTime = Field(alias="SessionStart")
    session_end: DateTime = Field(alias="SessionEnd")
    meter_value_start: Kwh | None = Field(default=None, alias="MeterValueStart")
    meter_value_end: Kwh | None = Field(default=None, alias="MeterValueEnd")
    meter_value_in_between: MeterValueInBetween | None = Field(
        default=None, alias="MeterValueInBetween"
    )
    consumed_energy: Kwh = Field(alias="ConsumedEnergy")
    # "In total you can provide maximum 10 metering signature values"
    signed_metering_values: Annotated[list[SignedMeteringValues], Field(max_length=10)] | None = (
        Field(default=None, alias="SignedMeteringValues")
    )
    calibration_law_verification_info: CalibrationLawVerification | None = Field(
        default=None, alias="CalibrationLawVerificationInfo"
    )
    hub_operator_id: OperatorId | None = Field(default=None, alias="HubOperatorID")
    hub_provider_id: ProviderId | None = Field(default=None, alias="HubProviderID")
