"""The OCPI 2.2.1 exchange models: the spec's own examples round-trip; bad input is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from csms.events.models_base import to_json_dict
from csms.events.models_ocpi_roaming import (
    CommandResponse,
    Credentials,
    Response,
    StartSession,
    Token,
    Version,
    VersionDetails,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ocpi"


def _text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


EXAMPLES: list[tuple[str, type[BaseModel]]] = [
    ("token_example_1_app_user.json", Token),
    ("token_example_2_full_rfid.json", Token),
    ("token_put_example.json", Token),
    ("credentials_example.json", Credentials),
    ("credentials_example2.json", Credentials),
    ("credentials_example3.json", Credentials),
    ("credentials_example4.json", Credentials),
    ("version_details_example.json", VersionDetails),
    ("version_details_example2.json", VersionDetails),
    ("transport_and_format_version_info_example.json", Response),
    ("transport_and_format_version_details_example.json", Response),
    ("transport_and_format_get_token_example.json", Response),
    ("transport_and_format_get_token_list_example.json", Response),
]


@pytest.mark.parametrize(("name", "model"), EXAMPLES)
def test_spec_example_validates_and_round_trips(name: str, model: type[BaseModel]) -> None:
    """Each spec example validates, and dumping it gives the same JSON back."""
    text = _text(name)
    assert to_json_dict(model.model_validate_json(text)) == json.loads(text)


def test_versions_example_round_trips() -> None:
    """versions_info_example.json: each Version of the list round-trips."""
    for version in json.loads(_text("versions_info_example.json")):
        assert to_json_dict(Version.model_validate_json(json.dumps(version))) == version


@pytest.mark.parametrize(
    "name",
    [
        "transport_and_format_get_token_example.json",
        "transport_and_format_get_token_list_example.json",
    ],
)
def test_enveloped_tokens_are_tokens(name: str) -> None:
    """The tokens inside the spec's response examples are valid Token objects."""
    data = json.loads(_text(name))["data"]
    for token in data if isinstance(data, list) else [data]:
        assert to_json_dict(Token.model_validate_json(json.dumps(token))) == token


def _token(**changes: Any) -> dict[str, Any]:
    return {**json.loads(_text("token_put_example.json")), **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"whitelist": "SOMETIMES"}, "whitelist"),
        ({"uid": "x" * 37}, "uid"),
        ({"type": "rfid"}, "type"),
        ({"valid": "yes"}, "valid"),
        ({"issuer": None}, "issuer"),
        ({"colour": "blue"}, "colour"),
        ({"last_updated": "2015-06-29T22:39:09+00:00"}, "last_updated"),
    ],
)
def test_bad_tokens_name_the_field(changes: dict[str, Any], field: str) -> None:
    """A wrong enum, a too long uid, a wrong type, a missing or unknown field, or an offset
    instead of UTC is refused, naming the field."""
    with pytest.raises(ValidationError) as caught:
        Token.model_validate_json(json.dumps(_token(**changes)))
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


def test_a_datetime_without_designator_is_utc() -> None:
    """types §DateTime: "The absence of the timezone designator implies a UTC timestamp";
    what csms writes back ends in Z."""
    token = Token.model_validate_json(json.dumps(_token(last_updated="2015-06-29T22:39:09")))
    assert token.last_updated == datetime(2015, 6, 29, 22, 39, 9, tzinfo=UTC)
    assert to_json_dict(token)["last_updated"] == "2015-06-29T22:39:09Z"


def test_command_bodies_are_checked() -> None:
    """A StartSession needs a response_url, a Token and a location; a CommandResponse needs
    a known result."""
    with pytest.raises(ValidationError):
        StartSession.model_validate_json(json.dumps({"token": _token(), "location_id": "L"}))
    with pytest.raises(ValidationError):
        CommandResponse.model_validate_json(json.dumps({"result": "MAYBE", "timeout": 30}))
    ok = StartSession.model_validate_json(
        json.dumps({"response_url": "https://e.example/r/1", "token": _token(), "location_id": "L"})
    )
    assert ok.evse_uid is None
