"""The OICP 2.3 models: the API doc's examples validate; wrong names and naive times fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from csms.events.models_oicp import (
    ChargeDetailRecord,
    EvseStatusRecord,
    OicpEvseStatus,
    PushEvseStatus,
    to_json_dict,
)

FIXTURES = Path(__file__).parent / "fixtures" / "oicp"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


def test_push_evse_status_example_validates_and_round_trips() -> None:
    """The eRoamingPushEvseStatus example validates and dumps back the same."""
    example = _load("push_evse_status.json")
    parsed = PushEvseStatus.model_validate_json(json.dumps(example))
    assert to_json_dict(parsed) == example
    record = parsed.operator_evse_status.evse_status_record[0]
    assert record.evse_status is OicpEvseStatus.AVAILABLE


def test_charge_detail_record_example_validates_and_round_trips() -> None:
    """The eRoamingChargeDetailRecord example (one identification) validates and round-trips."""
    example = _load("charge_detail_record.json")
    parsed = ChargeDetailRecord.model_validate_json(json.dumps(example))
    assert to_json_dict(parsed) == example


def test_api_doc_example_with_five_identifications_fails() -> None:
    """§IdentificationType: one of the five options, so the API doc's all-five example fails."""
    with pytest.raises(ValidationError) as caught:
        ChargeDetailRecord.model_validate_json(
            json.dumps(_load("charge_detail_record_api_doc.json"))
        )
    assert [e["loc"] for e in caught.value.errors()] == [("Identification",)]
    assert "exactly one" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new"),
    [("EvseID", "EvseId"), ("ConsumedEnergy", "consumed_energy"), ("SessionID", "SessionId")],
)
def test_wrong_field_name_fails(old: str, new: str) -> None:
    """Only the spec's PascalCase names are accepted; misspelt ones fail."""
    cdr = _load("charge_detail_record.json")
    cdr[new] = cdr.pop(old)
    with pytest.raises(ValidationError) as caught:
        ChargeDetailRecord.model_validate_json(json.dumps(cdr))
    assert {(new,), (old,)} <= {tuple(e["loc"]) for e in caught.value.errors()}


@pytest.mark.parametrize("text", ["2020-09-23T14:17:53", "2020-09-23", "2020-09-23 14:17:53Z"])
def test_naive_or_malformed_datetime_text_fails(text: str) -> None:
    """Date/Time values need a zone designator and the RFC 3339 form."""
    cdr = {**_load("charge_detail_record.json"), "ChargingStart": text}
    with pytest.raises(ValidationError):
        ChargeDetailRecord.model_validate_json(json.dumps(cdr))


def test_naive_python_datetime_fails() -> None:
    """A naive Python datetime is refused."""
    cdr = ChargeDetailRecord.model_validate_json(json.dumps(_load("charge_detail_record.json")))
    data = cdr.model_dump(by_alias=True, exclude_none=True)
    data["SessionEnd"] = datetime(2020, 9, 23, 14, 17, 53)
    with pytest.raises(ValidationError, match="naive"):
        ChargeDetailRecord.model_validate(data)


def test_local_time_keeps_its_offset() -> None:
    """Times keep the station's offset (CDR best practice); UTC is written Z."""
    cdr = ChargeDetailRecord.model_validate_json(json.dumps(_load("charge_detail_record.json")))
    data = cdr.model_dump(by_alias=True, exclude_none=True)
    data["SessionStart"] = datetime(2020, 9, 23, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    data["SessionEnd"] = datetime(2020, 9, 23, 15, 0, 0, 250000, tzinfo=UTC)
    dumped = to_json_dict(ChargeDetailRecord.model_validate(data))
    assert dumped["SessionStart"] == "2020-09-23T16:00:00+02:00"
    assert dumped["SessionEnd"] == "2020-09-23T15:00:00.250Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ConsumedEnergy", 10.1234),  # Decimal (,3)
        ("ConsumedEnergy", "10"),
        ("SessionID", "string"),  # §SessionIDType: a GUID
        ("EvseID", "DE*XYZ*TEST1"),  # ISO EvseID needs the "E"
        ("EvseID", "de*xyz*etest1"),  # §EvseIDType as written: upper case
        ("HubProviderID", "DE_DCB"),
        ("PartnerProductID", "x" * 51),
    ],
)
def test_field_constraints(field: str, value: object) -> None:
    """Restricted string types and Decimal (,3) are enforced."""
    cdr = {**_load("charge_detail_record.json"), field: value}
    with pytest.raises(ValidationError):
        ChargeDetailRecord.model_validate_json(json.dumps(cdr))


def test_at_most_ten_signed_metering_values() -> None:
    """'In total you can provide maximum 10 metering signature values'."""
    cdr = _load("charge_detail_record.json")
    cdr["SignedMeteringValues"] = [{"MeteringStatus": "Progress"}] * 11
    with pytest.raises(ValidationError):
        ChargeDetailRecord.model_validate_json(json.dumps(cdr))


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        ("Available", True),
        ("Reserved", True),
        ("Occupied", True),
        ("OutOfService", True),
        ("EvseNotFound", True),
        ("Unknown", True),
        ("available", False),
        ("Charging", False),
    ],
)
def test_evse_status_record(status: str, ok: bool) -> None:
    """EvseStatusRecord takes exactly the six EvseStatusType values."""
    text = json.dumps({"EvseID": "DE*ABC*E123456", "EvseStatus": status})
    if ok:
        assert to_json_dict(EvseStatusRecord.model_validate_json(text)) == json.loads(text)
    else:
        with pytest.raises(ValidationError):
            EvseStatusRecord.model_validate_json(text)
