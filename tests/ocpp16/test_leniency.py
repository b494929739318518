"""Tolerant mode (docs/ocpp.md, "Tolerant mode"): schema deviations of real chargers,
normalised per vendor and model.

The payloads are the ones reported in public issue trackers, so each profile is tested
against what a real charger sent.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from csms.config import LENIENCY_DEVIATIONS, LeniencyRule
from csms.ocpp16.handlers import HANDLERS
from csms.ocpp16.leniency import Deviation, Leniency, Profile, normalise
from csms.ocpp16.rpc import Answer, Call, RpcSession
from csms.ocpp16.schemas import load_validators
from csms.store import chargers, transactions
from tests.support import new_identity, running_csms, settings_for

VALIDATORS = load_validators()

# lbbrhzn/ocpp#1622 (Schneider Electric EVlink Smart Wallbox): serial numbers of 33 and 26
# characters where OCPP 1.6 allows 25 (mobilityhouse/ocpp#122, #273).
SCHNEIDER_BOOT = {
    "chargeBoxSerialNumber": "EVB1A22P2KI3N12345678901234567890",
    "chargePointModel": "EVlink Smart Wallbox",
    "chargePointSerialNumber": "3N123456789F2S1B1234567890",
    "chargePointVendor": "Schneider Electric",
    "firmwareVersion": "3.4.0.9",
}
# shiv3/ocpp-cp-simulator#83: a fractional meterStop (Wh are integers in 1.6).
FRACTIONAL_STOP = {
    "transactionId": 1,
    "meterStop": 26008.333,
    "timestamp": "2026-06-23T10:00:00Z",
}
# mobilityhouse/ocpp#377: a sampled value sent as a JSON number, not a string.
NUMERIC_SAMPLE = {
    "connectorId": 1,
    "meterValue": [
        {
            "timestamp": "2022-10-03T16:15:53.000Z",
            "sampledValue": [
                {"value": 10, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            ],
        }
    ],
}
# evcc-io/evcc#10399 (Growatt THOR): local time without an offset.
GROWATT_STATUS = {
    "connectorId": 1,
    "status": "Available",
    "errorCode": "NoError",
    "timestamp": "2023-10-19T15:28:07",
}


def profile(*deviations: Deviation, zone: str = "") -> Profile:
    rule = LeniencyRule(normalise=tuple(d.value for d in deviations), timezone=zone)
    compiled = Leniency.from_rules([rule]).profile_for("any", "any")
    assert compiled is not None
    return compiled


def normalised(action: str, payload: dict[str, Any], lenient: Profile) -> Any:
    result, changes = normalise(VALIDATORS.request_schema(action), payload, lenient)
    assert VALIDATORS.check_request(action, result) is None, changes
    return result, [(c.deviation, c.path) for c in changes]


def test_the_config_names_every_deviation() -> None:
    """config.LENIENCY_DEVIATIONS and the Deviation enum list the same names."""
    assert set(LENIENCY_DEVIATIONS) == {d.value for d in Deviation}


def test_over_long_strings_are_cut_to_the_schema_maximum() -> None:
    """Schneider's 33- and 26-character serial numbers become their first 25 characters."""
    result, changes = normalised(
        "BootNotification", SCHNEIDER_BOOT, profile(Deviation.LONG_STRINGS)
    )
    assert result["chargeBoxSerialNumber"] == "EVB1A22P2KI3N123456789012"
    assert result["chargePointSerialNumber"] == "3N123456789F2S1B123456789"
    assert changes == [
        (Deviation.LONG_STRINGS, "/chargeBoxSerialNumber"),
        (Deviation.LONG_STRINGS, "/chargePointSerialNumber"),
    ]


def test_an_over_long_id_tag_is_never_shortened() -> None:
    """A shortened idTag could be another driver's: it stays a TypeConstraintViolation."""
    payload = {"idTag": "A" * 21}
    result, changes = normalise(
        VALIDATORS.request_schema("Authorize"), payload, profile(Deviation.LONG_STRINGS)
    )
    assert (result, changes) == (payload, [])
    violation = VALIDATORS.check_request("Authorize", result)
    assert violation is not None
    assert violation.code.value == "TypeConstraintViolation"


def test_decimals_in_integer_fields_are_rounded() -> None:
    """A meterStop of 26008.333 Wh is stored as 26008 (round half to even)."""
    result, changes = normalised(
        "StopTransaction", FRACTIONAL_STOP, profile(Deviation.DECIMAL_INTEGERS)
    )
    assert result["meterStop"] == 26008
    assert changes == [(Deviation.DECIMAL_INTEGERS, "/meterStop")]


def test_numbers_sent_as_json_numbers_where_strings_belong_become_text() -> None:
    """ "value": 10 becomes "value": "10"."""
    result, changes = normalised(
        "MeterValues", NUMERIC_SAMPLE, profile(Deviation.STRINGS_AS_NUMBERS)
    )
    assert result["meterValue"][0]["sampledValue"][0]["value"] == "10"
    assert changes == [(Deviation.STRINGS_AS_NUMBERS, "/meterValue/0/sampledValue/0/value")]


def test_numbers_sent_as_strings_are_parsed() -> None:
    """A "connectorId" of "1" and a quoted meterStart are read as the integers they spell."""
    start = {
        "connectorId": "1",
        "idTag": "CARD-1",
        "meterStart": "1234",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    result, changes = normalised("StartTransaction", start, profile(Deviation.NUMBERS_AS_STRINGS))
    assert (result["connectorId"], result["meterStart"]) == (1, 1234)
    assert [path for _, path in changes] == ["/connectorId", "/meterStart"]


def test_a_quoted_decimal_in_an_integer_field_needs_both_deviations() -> None:
    """ "12.5" in an integer field is parsed, and rounded only when decimals are allowed too."""
    start = {"connectorId": 1, "idTag": "C", "meterStart": "12.5", "timestamp": "2026-01-01T00:00Z"}
    schema = VALIDATORS.request_schema("StartTransaction")
    only_quoted, _ = normalise(schema, start, profile(Deviation.NUMBERS_AS_STRINGS))
    assert VALIDATORS.check_request("StartTransaction", only_quoted) is not None
    both, _ = normalise(
        schema, start, profile(Deviation.NUMBERS_AS_STRINGS, Deviation.DECIMAL_INTEGERS)
    )
    assert both["meterStart"] == 12


def test_enum_values_in_the_wrong_case_get_the_schema_spelling() -> None:
    """Enums in another case: "charging" becomes "Charging", and "noerror" "NoError"."""
    status = {"connectorId": 1, "status": "charging", "errorCode": "noerror"}
    result, changes = normalised("StatusNotification", status, profile(Deviation.ENUM_CASE))
    assert (result["status"], result["errorCode"]) == ("Charging", "NoError")
    assert len(changes) == 2


def test_naive_timestamps_are_read_in_the_rule_zone() -> None:
    """Growatt THOR's local 15:28:07 (Europe/Berlin, summer time) is 13:28:07 UTC."""
    result, changes = normalised(
        "StatusNotification",
        GROWATT_STATUS,
        profile(Deviation.NAIVE_TIMESTAMPS, zone="Europe/Berlin"),
    )
    assert result["timestamp"] == "2023-10-19T13:28:07.000Z"
    assert changes == [(Deviation.NAIVE_TIMESTAMPS, "/timestamp")]


def test_unknown_fields_are_dropped() -> None:
    """A property the schema does not define (OCPP-J errata §3.2) is removed."""
    heartbeat: dict[str, Any] = {"uptime": 12}
    result, changes = normalised("Heartbeat", heartbeat, profile(Deviation.UNKNOWN_FIELDS))
    assert (result, changes) == ({}, [(Deviation.UNKNOWN_FIELDS, "/uptime")])


def test_a_deviation_the_profile_does_not_name_is_left_alone() -> None:
    """Only the listed deviations are normalised; the rest still fails validation."""
    result, changes = normalise(
        VALIDATORS.request_schema("BootNotification"),
        SCHNEIDER_BOOT,
        profile(Deviation.ENUM_CASE),
    )
    assert (result, changes) == (SCHNEIDER_BOOT, [])


def test_rules_match_vendor_and_model_case_insensitively_first_wins() -> None:
    """Shell patterns on vendor and model; the first matching rule applies."""
    leniency = Leniency.from_rules(
        [
            LeniencyRule(vendor="schneider*", model="EVlink*", normalise=("long_strings",)),
            LeniencyRule(vendor="*", model="*", normalise=("enum_case",)),
        ]
    )
    evlink = leniency.profile_for("Schneider Electric", "EVLINK Smart Wallbox")
    other = leniency.profile_for("ABB", "Terra AC")
    assert evlink is not None
    assert Deviation.LONG_STRINGS in evlink
    assert other is not None
    assert Deviation.ENUM_CASE in other
    assert leniency.profile_for(None, None) is None


def rpc(leniency: Leniency | None) -> RpcSession:
    return RpcSession(
        validators=VALIDATORS, supported=HANDLERS.keys(), accepted=False, leniency=leniency
    )


def frame(action: str, payload: dict[str, Any], unique_id: str = "1") -> str:
    return orjson.dumps([2, unique_id, action, payload]).decode()


def test_strict_is_the_default() -> None:
    """Without a rule the Schneider boot gets TypeConstraintViolation, as the schema says."""
    event = rpc(None).receive_text(frame("BootNotification", SCHNEIDER_BOOT))
    assert isinstance(event, Answer)
    assert event.error_code is not None
    assert event.error_code.value == "TypeConstraintViolation"


def test_the_boot_chooses_the_rule_for_the_rest_of_the_session() -> None:
    """A matching boot is normalised, and so are the charger's later messages; a charger of
    another vendor stays strict."""
    leniency = Leniency.from_rules(
        [
            LeniencyRule(
                vendor="Schneider Electric",
                model="EVlink*",
                normalise=("long_strings", "enum_case"),
            )
        ]
    )
    session = rpc(leniency)
    boot = session.receive_text(frame("BootNotification", SCHNEIDER_BOOT))
    assert isinstance(boot, Call)
    assert [c.path for c in boot.normalised] == [
        "/chargeBoxSerialNumber",
        "/chargePointSerialNumber",
    ]
    session.accepted = True
    status = session.receive_text(
        frame(
            "StatusNotification",
            {"connectorId": 1, "status": "available", "errorCode": "NoError"},
            "2",
        )
    )
    assert isinstance(status, Call)
    assert status.payload["status"] == "Available"
    other = rpc(leniency)
    strict = other.receive_text(
        frame("BootNotification", {**SCHNEIDER_BOOT, "chargePointVendor": "ABB"})
    )
    assert isinstance(strict, Answer)


@pytest.mark.postgres
async def test_normalised_payloads_are_stored_logged_once_and_counted(database_url: str) -> None:
    """End to end: a Schneider boot and a fractional stop are accepted, the stored data is
    the normalised form, each kind of normalisation is logged once per charger and every
    one is counted."""
    rules = (
        LeniencyRule(
            vendor="Schneider Electric",
            model="EVlink*",
            normalise=("long_strings", "decimal_integers"),
        ),
    )
    async with running_csms(settings_for(database_url, leniency=rules)) as csms:
        identity = new_identity("EVLINK")
        with capture_logs() as logs:
            async with csms.charger(identity, boot=False) as charger:
                for _ in range(2):
                    answer = await charger.call("BootNotification", SCHNEIDER_BOOT)
                    assert answer["status"] == "Accepted"
                start = await charger.call(
                    "StartTransaction",
                    {
                        "connectorId": 1,
                        "idTag": "CARD-1",
                        "meterStart": 1000,
                        "timestamp": "2026-06-23T09:00:00Z",
                    },
                )
                stop = {**FRACTIONAL_STOP, "transactionId": start["transactionId"]}
                assert await charger.call("StopTransaction", stop) == {}
        async with csms.app.database.sessions() as db:
            row = await chargers.get_charge_point(db, identity)
            stored = await transactions.get_transaction(db, start["transactionId"])
        assert row is not None
        assert stored is not None
        assert row.charge_box_serial_number == "EVB1A22P2KI3N123456789012"
        assert row.serial_number == "3N123456789F2S1B123456789"
        assert stored.meter_stop == 26008
        logged = [(e["action"], e["path"]) for e in logs if e["event"] == "payload_normalised"]
        assert logged == [
            ("BootNotification", "/chargeBoxSerialNumber"),
            ("BootNotification", "/chargePointSerialNumber"),
            ("StopTransaction", "/meterStop"),
        ]
        assert csms.app.counters["leniency.long_strings"] == 4
        assert csms.app.counters["leniency.decimal_integers"] == 1
