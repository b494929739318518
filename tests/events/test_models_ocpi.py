"""The OCPI 2.2.1 models: the spec's own examples validate; wrong names and naive times fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from csms.events.models_ocpi import (
    Cdr,
    ConnectorType,
    DisplayText,
    EnergyMix,
    Evse,
    EvseStatusUpdate,
    GeoLocation,
    Hours,
    Location,
    PublishTokenType,
    Session,
    Status,
    Tariff,
    to_json_dict,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ocpi"


def _text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _error_locations(exc: ValidationError) -> set[tuple[str | int, ...]]:
    return {tuple(error["loc"]) for error in exc.errors()}


VALID_EXAMPLES: list[tuple[str, type[BaseModel]]] = [
    ("location_example.json", Location),
    ("location_example_parking_garage_opening_hours.json", Location),
    ("location_example_uc2_destination_charger.json", Location),
    ("location_example_uc3_destination_charger_not_published.json", Location),
    ("location_example_uc4_limited_visibility.json", Location),
    ("location_example_uc5_home_charge_point.json", Location),
    ("location_hours_247_open_exception_closing.json", Hours),
    ("location_hours_opening_hours_with_exceptional_closing.json", Hours),
    ("location_hours_opening_hours_with_exceptional_opening.json", Hours),
    ("type_displaytext_example.json", DisplayText),
    ("v2.2.1-d2/cdr_example.json", Cdr),
    ("v2.2.1-d2/session_example_1_simple_start.json", Session),
    ("v2.2.1-d2/session_example_2_short_finished.json", Session),
    *[(path.name, Tariff) for path in sorted(FIXTURES.glob("tariff*.json"))],
]


@pytest.mark.parametrize(("name", "model"), VALID_EXAMPLES)
def test_spec_example_validates_and_round_trips(name: str, model: type[BaseModel]) -> None:
    """Each spec example validates, and dumping it gives the same JSON back."""
    text = _text(name)
    parsed = model.model_validate_json(text)
    assert to_json_dict(parsed) == json.loads(text)


@pytest.mark.parametrize(
    ("name", "key", "model"),
    [
        ("location_energymix_example_simple.json", "energy_mix", EnergyMix),
        ("location_energymix_example_energy_provider.json", "energy_mix", EnergyMix),
        ("location_energymix_example_complete.json", "energy_mix", EnergyMix),
        ("location_regularhours_example.json", "opening_times", Hours),
    ],
)
def test_spec_fragment_validates(name: str, key: str, model: type[BaseModel]) -> None:
    """The spec's EnergyMix and Hours fragments validate."""
    fragment = json.dumps(json.loads(_text(name))[key])
    assert to_json_dict(model.model_validate_json(fragment)) == json.loads(fragment)


def test_tariff_examples_are_all_there() -> None:
    """All 20 tariff examples of tag 2.2.1 (but the PUT body) are checked."""
    assert len([name for name, model in VALID_EXAMPLES if model is Tariff]) == 20


@pytest.mark.parametrize(
    "name",
    [
        "cdr_example.json",
        "session_example_1_simple_start.json",
        "session_example_2_short_finished.json",
    ],
)
def test_2_2_1_examples_lack_only_the_token_owner(name: str) -> None:
    """Tag 2.2.1's Session/CDR examples fail only on the required cdr_token owner fields."""
    model: type[BaseModel] = Cdr if name.startswith("cdr") else Session
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(_text(name))
    assert _error_locations(caught.value) == {
        ("cdr_token", "country_code"),
        ("cdr_token", "party_id"),
    }


def test_put_evse_example_with_wrong_field_names_fails() -> None:
    """The spec's add-EVSE example uses 'floor' and a numeric physical_reference: refused."""
    with pytest.raises(ValidationError) as caught:
        Evse.model_validate_json(_text("location_put_example_add_evse.json"))
    kinds = {(tuple(e["loc"]), e["type"]) for e in caught.value.errors()}
    assert (("floor",), "extra_forbidden") in kinds
    assert (("physical_reference",), "string_type") in kinds
    assert (("connectors", 0, "power_type"), "missing") in kinds


def _session() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_text("v2.2.1-d2/session_example_2_short_finished.json"))
    return loaded


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("kwh", "kWh"),
        ("start_date_time", "start_datetime"),
        ("evse_uid", "evse_id"),
        ("last_updated", "lastUpdated"),
    ],
)
def test_wrong_field_name_fails(old: str, new: str) -> None:
    """A misspelt field is an error (extra="forbid"), and so is the missing one."""
    session = _session()
    session[new] = session.pop(old)
    with pytest.raises(ValidationError) as caught:
        Session.model_validate_json(json.dumps(session))
    assert {(new,), (old,)} <= _error_locations(caught.value)


def test_wrong_nested_field_name_fails() -> None:
    """A misspelt field inside a nested object fails too."""
    session = _session()
    session["cdr_token"]["contractId"] = session["cdr_token"].pop("contract_id")
    with pytest.raises(ValidationError):
        Session.model_validate_json(json.dumps(session))


@pytest.mark.parametrize(
    "text",
    [
        "2015-06-29T22:39:09",  # no designator: the spec reads UTC, we refuse it
        "2015-06-29T22:39:09+00:00",  # types §DateTime: "+00:00 is not the same as UTC"
        "2015-06-29T22:39:09+02:00",
        "2015-06-29 22:39:09Z",
        "2015-06-29",
        "2015-06-29T22:39:09.12345Z",  # string(25)
    ],
)
def test_datetime_text_other_than_utc_z_fails(text: str) -> None:
    """JSON DateTime values must be UTC with Z."""
    session = _session()
    session["start_date_time"] = text
    with pytest.raises(ValidationError) as caught:
        Session.model_validate_json(json.dumps(session))
    assert _error_locations(caught.value) == {("start_date_time",)}


def test_naive_datetime_fails() -> None:
    """A naive Python datetime is refused."""
    with pytest.raises(ValidationError, match="naive"):
        EvseStatusUpdate.model_validate(
            {"evse_uid": "CP1*1", "status": Status.CHARGING, "last_updated": datetime(2024, 1, 1)}
        )


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2024, 1, 1, 10, 0, 5, tzinfo=UTC), "2024-01-01T10:00:05Z"),
        (datetime(2024, 1, 1, 10, 0, 5, 123456, tzinfo=UTC), "2024-01-01T10:00:05.123Z"),
        (
            datetime(2024, 1, 1, 12, 0, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-01T10:00:05Z",
        ),
    ],
)
def test_datetime_is_emitted_in_utc_with_z(when: datetime, text: str) -> None:
    """Aware datetimes are emitted as YYYY-MM-DDTHH:MM:SS[.fff]Z in UTC."""
    update = EvseStatusUpdate.model_validate(
        {"evse_uid": "CP1*1", "status": Status.CHARGING, "last_updated": when}
    )
    assert to_json_dict(update) == {
        "evse_uid": "CP1*1",
        "status": "CHARGING",
        "last_updated": text,
    }


@pytest.mark.parametrize(
    ("kwh", "error"),
    [
        ('"41.12"', "JSON number"),
        ("41.12345", "decimal places"),
        ("true", "JSON number"),
    ],
)
def test_number_must_be_a_json_number_with_4_decimals(kwh: str, error: str) -> None:
    """OCPI numbers are JSON numbers with at most 4 decimals."""
    text = json.dumps(_session()).replace('"kwh": 41.12', f'"kwh": {kwh}')
    with pytest.raises(ValidationError, match=error):
        Session.model_validate_json(text)


def test_python_input_is_strict() -> None:
    """In Python mode numbers must be Decimal and enums our members, not float or str."""
    good = {"evse_uid": "CP1*1", "status": Status.CHARGING, "last_updated": datetime.now(UTC)}
    EvseStatusUpdate.model_validate(good)
    with pytest.raises(ValidationError):
        EvseStatusUpdate.model_validate({**good, "status": "CHARGING"})
    session = Session.model_validate_json(json.dumps(_session()))
    assert session.kwh == Decimal("41.12")


@pytest.mark.parametrize("status", ["completed", "Completed", "FINISHED"])
def test_wrong_enum_value_fails(status: str) -> None:
    """Enum values are case sensitive and closed."""
    session = _session()
    session["status"] = status
    with pytest.raises(ValidationError):
        Session.model_validate_json(json.dumps(session))


def test_connector_type_keeps_mixed_case_iec_60309() -> None:
    """ConnectorType has the spec's mixed-case IEC 60309 values."""
    assert ConnectorType("IEC_60309_2_single_16") is ConnectorType.IEC_60309_2_single_16
    with pytest.raises(ValueError, match="IEC_60309_2_SINGLE_16"):
        ConnectorType("IEC_60309_2_SINGLE_16")


@pytest.mark.parametrize(
    ("latitude", "longitude", "ok"),
    [
        ("51.047599", "3.729944", True),
        ("-33.868819", "151.209295", True),
        # The regex allows a sign and 7 decimals, string(10)/string(11) do not: both apply.
        ("-33.8688197", "151.209295", False),
        ("-33.868819", "-151.2092955", False),
        ("51.0475", "3.729944", False),  # 4 decimals: the regex wants 5-7
        ("51.04759911", "3.729944", False),
        ("151.047599", "3.729944", False),
        ("51,047599", "3.729944", False),
    ],
)
def test_coordinates_are_strings_matching_the_regex(
    latitude: str, longitude: str, ok: bool
) -> None:
    """GeoLocation latitude/longitude follow the spec's regexes."""
    text = json.dumps({"latitude": latitude, "longitude": longitude})
    if ok:
        GeoLocation.model_validate_json(text)
    else:
        with pytest.raises(ValidationError):
            GeoLocation.model_validate_json(text)


def test_coordinates_as_numbers_fail() -> None:
    """Coordinates are strings, not JSON numbers."""
    with pytest.raises(ValidationError):
        GeoLocation.model_validate_json('{"latitude": 51.047599, "longitude": 3.729944}')


def _cdr() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_text("v2.2.1-d2/cdr_example.json"))
    return loaded


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"charging_periods": []}, "at least 1 item"),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2015-06-29T21:39:09Z",
                        "dimensions": [{"type": "STATE_OF_CHARGE", "volume": 80}],
                    }
                ]
            },
            "Session-only",
        ),
        ({"id": "x" * 37}, "at most 36"),
        ({"credit": True}, "credit_reference_id"),
        ({"total_cost": None}, "total_cost"),
    ],
)
def test_cdr_rules(change: dict[str, Any], message: str) -> None:
    """CDR: periods '+', no Session-only dimensions, id length, credit reference, total_cost."""
    cdr = {**_cdr(), **change}
    with pytest.raises(ValidationError, match=message):
        Cdr.model_validate_json(json.dumps(cdr))


def test_credit_cdr_may_have_a_longer_id() -> None:
    """A credit CDR id may be up to 39 characters."""
    cdr = {**_cdr(), "id": "x" * 39, "credit": True, "credit_reference_id": "12345"}
    assert Cdr.model_validate_json(json.dumps(cdr)).id == "x" * 39


@pytest.mark.parametrize(
    ("hours", "ok"),
    [
        ({"twentyfourseven": True}, True),
        ({"twentyfourseven": False}, False),
        (
            {
                "twentyfourseven": True,
                "regular_hours": [{"weekday": 1, "period_begin": "08:00", "period_end": "20:00"}],
            },
            False,
        ),
        (
            {
                "twentyfourseven": False,
                "regular_hours": [{"weekday": 8, "period_begin": "08:00", "period_end": "20:00"}],
            },
            False,
        ),
        (
            {
                "twentyfourseven": False,
                "regular_hours": [{"weekday": 1, "period_begin": "20:00", "period_end": "08:00"}],
            },
            False,
        ),
        (
            {
                "twentyfourseven": False,
                "regular_hours": [{"weekday": 1, "period_begin": "8:00", "period_end": "20:00"}],
            },
            False,
        ),
    ],
)
def test_opening_times(hours: dict[str, Any], ok: bool) -> None:
    """Hours: regular_hours exactly when not 24/7; weekday 1-7; HH:MM; end after begin."""
    if ok:
        Hours.model_validate_json(json.dumps(hours))
    else:
        with pytest.raises(ValidationError):
            Hours.model_validate_json(json.dumps(hours))


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ({"uid": "012345678", "type": "RFID"}, True),
        ({"visual_number": "12345-67", "issuer": "NewMotion"}, True),
        ({"group_id": "G1"}, True),
        ({"uid": "012345678"}, False),
        ({"visual_number": "12345-67"}, False),
        ({"issuer": "NewMotion"}, False),
    ],
)
def test_publish_token_rules(token: dict[str, Any], ok: bool) -> None:
    """PublishTokenType: uid, visual_number or group_id; uid needs type; visual_number issuer."""
    if ok:
        PublishTokenType.model_validate_json(json.dumps(token))
    else:
        with pytest.raises(ValidationError):
            PublishTokenType.model_validate_json(json.dumps(token))


def test_published_location_cannot_restrict_visibility() -> None:
    """publish_allowed_to is only for publish=false."""
    location = json.loads(_text("location_example_uc4_limited_visibility.json"))
    location["publish"] = True
    with pytest.raises(ValidationError, match="publish_allowed_to"):
        Location.model_validate_json(json.dumps(location))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "été"),  # CiString: printable ASCII only
        ("id", ""),
        ("id", "x" * 37),
        ("address", "line\nbreak"),  # string: no control characters
        ("address", "x" * 46),
        ("country_code", "BEL"),
        ("party_id", "BE"),
        ("country", "BE"),
    ],
)
def test_string_types(field: str, value: str) -> None:
    """CiString/string lengths and character sets, ISO code shapes."""
    location = json.loads(_text("location_example.json"))
    location[field] = value
    with pytest.raises(ValidationError):
        Location.model_validate_json(json.dumps(location))


def test_utf8_strings_are_fine() -> None:
    """string fields take printable UTF-8 (the spec's own 'Krautwigstraße', 'Malmö')."""
    location = Location.model_validate_json(_text("location_example_uc5_home_charge_point.json"))
    assert location.address == "Krautwigstraße 283A"
