"""OCPP -> OICP 2.3: EvseStatus mapping, identification and ChargeDetailRecord (pure)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from csms.core.meter import ENERGY_IMPORT_REGISTER, Sample
from csms.core.ocpi import PowerType
from csms.core.oicp import (
    OicpEvseStatus,
    build_charge_detail_record,
    build_evse_status_record,
    build_identification,
    oicp_evse_status,
    partner_product_id,
)
from csms.core.session import AuthMethod, TokenFacts, TokenType
from csms.events.models_oicp import ChargeDetailRecord, EvseStatusRecord, to_json_dict
from tests.sessions import session_facts

T0 = datetime(2024, 1, 1, 10, 0, 0, tzinfo=UTC)
SESSION_ID = "b2688855-7f00-0002-6d8e-48d883f6abb6"
STOPPED = session_facts(
    T0,
    id_tag="04a2b3c4d5e6f7",
    country_code="DE",
    party_id="ABC",
    stop=T0 + timedelta(hours=1),
    meter_stop_wh=1_012_345,
)


def register(minutes: int, wh: str) -> Sample:
    return Sample(
        timestamp=T0 + timedelta(minutes=minutes),
        value=wh,
        measurand=ENERGY_IMPORT_REGISTER,
        unit="Wh",
        context="Sample.Periodic",
        location="Outlet",
        phase="",
        format="Raw",
    )


@pytest.mark.parametrize(
    ("ocpp", "online", "oicp"),
    [
        ("Available", True, OicpEvseStatus.AVAILABLE),
        ("Reserved", True, OicpEvseStatus.RESERVED),
        ("Preparing", True, OicpEvseStatus.OCCUPIED),
        ("Charging", True, OicpEvseStatus.OCCUPIED),
        ("SuspendedEV", True, OicpEvseStatus.OCCUPIED),
        ("SuspendedEVSE", True, OicpEvseStatus.OCCUPIED),
        ("Finishing", True, OicpEvseStatus.OCCUPIED),
        ("Unavailable", True, OicpEvseStatus.OUT_OF_SERVICE),
        ("Faulted", True, OicpEvseStatus.OUT_OF_SERVICE),
        ("Bogus", True, OicpEvseStatus.UNKNOWN),
        (None, True, OicpEvseStatus.UNKNOWN),
        ("Available", False, OicpEvseStatus.UNKNOWN),
        ("Charging", False, OicpEvseStatus.UNKNOWN),
    ],
)
def test_oicp_status_mapping(ocpp: str | None, online: bool, oicp: OicpEvseStatus) -> None:
    """OCPP status -> OICP EvseStatus; Unknown when unknown or offline."""
    assert oicp_evse_status(ocpp, online=online) is oicp
    record = build_evse_status_record(evse_id="DE*ABC*ECP001*1", ocpp_status=ocpp, online=online)
    assert to_json_dict(EvseStatusRecord.model_validate(record)) == {
        "EvseID": "DE*ABC*ECP001*1",
        "EvseStatus": oicp.value,
    }


def test_evse_not_found_is_never_mapped() -> None:
    """EvseNotFound is a Hubject answer; no OCPP status maps to it."""
    statuses = [
        "Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE",
        "Finishing", "Reserved", "Unavailable", "Faulted",
    ]  # fmt: skip
    assert OicpEvseStatus.EVSE_NOT_FOUND not in {oicp_evse_status(s) for s in statuses}


@pytest.mark.parametrize(
    ("changes", "identification"),
    [
        ({}, {"RFIDMifareFamilyIdentification": {"UID": "04A2B3C4D5E6F7"}}),
        ({"id_tag": "DEADBEEF"}, {"RFIDMifareFamilyIdentification": {"UID": "DEADBEEF"}}),
        (
            {
                "auth_method": AuthMethod.COMMAND,
                "token": TokenFacts(
                    country_code="DE", party_id="8EO", contract_id="DE-8EO-CAet5e4XY-3"
                ),
            },
            {"RemoteIdentification": {"EvcoID": "DE-8EO-CAet5e4XY-3"}},
        ),
        (
            {
                "id_tag": "app-user-17",
                "token": TokenFacts(
                    country_code="DE",
                    party_id="8EO",
                    contract_id="DE*8EO*Aet5e4*3",
                    type=TokenType.APP_USER,
                ),
            },
            {"RemoteIdentification": {"EvcoID": "DE*8EO*Aet5e4*3"}},
        ),
    ],
)
def test_identification(changes: dict[str, Any], identification: dict[str, Any]) -> None:
    """RFID UIDs -> RFIDMifareFamily; remote starts and app users -> RemoteIdentification."""
    assert build_identification(dataclasses.replace(STOPPED, **changes)) == identification


@pytest.mark.parametrize("id_tag", ["TAG-1", "04A2B3C4D5", "XYZXYZXY"])
def test_identification_impossible(id_tag: str) -> None:
    """An idTag that is no UID, with no EvcoID contract, cannot go to Hubject."""
    with pytest.raises(ValueError, match="no OICP identification"):
        build_identification(dataclasses.replace(STOPPED, id_tag=id_tag))


@pytest.mark.parametrize(
    ("power_type", "product"),
    [
        (PowerType.AC_1_PHASE, "AC1"),
        (PowerType.AC_3_PHASE, "AC3"),
        (PowerType.DC, "DC"),
        (PowerType.AC_2_PHASE, None),
        (PowerType.AC_2_PHASE_SPLIT, None),
    ],
)
def test_partner_product_id(power_type: PowerType, product: str | None) -> None:
    """The recommended PartnerProductID per power type."""
    assert partner_product_id(power_type) == product


def test_charge_detail_record() -> None:
    """ConsumedEnergy and meter values in kWh (3 decimals), times, ids; it validates."""
    built = build_charge_detail_record(
        STOPPED,
        session_id=SESSION_ID,
        evse_id="DE*ABC*ECP001*1",
        product_id=partner_product_id(PowerType.AC_3_PHASE),
    )
    cdr = ChargeDetailRecord.model_validate(built)
    assert to_json_dict(cdr) == {
        "SessionID": SESSION_ID,
        "CPOPartnerSessionID": "42",
        "PartnerProductID": "AC3",
        "EvseID": "DE*ABC*ECP001*1",
        "Identification": {"RFIDMifareFamilyIdentification": {"UID": "04A2B3C4D5E6F7"}},
        "ChargingStart": "2024-01-01T10:00:00Z",
        "ChargingEnd": "2024-01-01T11:00:00Z",
        "SessionStart": "2024-01-01T10:00:00Z",
        "SessionEnd": "2024-01-01T11:00:00Z",
        "MeterValueStart": 1000.0,
        "MeterValueEnd": 1012.345,
        "ConsumedEnergy": 12.345,
    }


def test_charge_detail_record_in_station_time_with_session_times_and_readings() -> None:
    """Session times are given, all times in the station's zone, readings in between."""
    berlin_winter = timezone(timedelta(hours=1))
    facts = dataclasses.replace(
        STOPPED,
        meter_stop_wh=1_012_346,
        samples=(register(-5, "999000"), register(20, "1004000.4"), register(40, "1008000.6")),
    )
    built = build_charge_detail_record(
        facts,
        session_id=SESSION_ID,
        evse_id="DE*ABC*ECP001*1",
        session_start=T0 - timedelta(minutes=2),
        session_end=T0 + timedelta(hours=1, minutes=10),
        tz=berlin_winter,
        meter_values_in_between=True,
        hub_operator_id="DE*ABC",
        hub_provider_id="DE-DCB",
    )
    dumped = to_json_dict(ChargeDetailRecord.model_validate(built))
    assert dumped["ChargingStart"] == "2024-01-01T11:00:00+01:00"
    assert dumped["SessionStart"] == "2024-01-01T10:58:00+01:00"
    assert dumped["SessionEnd"] == "2024-01-01T12:10:00+01:00"
    assert dumped["MeterValueInBetween"] == {"meterValues": [1004.0, 1008.001]}
    assert dumped["ConsumedEnergy"] == 12.346
    assert dumped["HubOperatorID"] == "DE*ABC"
    assert dumped["HubProviderID"] == "DE-DCB"


def test_charge_detail_record_needs_a_stop() -> None:
    """No CDR before the stop."""
    with pytest.raises(ValueError, match="has not stopped"):
        build_charge_detail_record(
            dataclasses.replace(STOPPED, stop=None, meter_stop_wh=None),
            session_id=SESSION_ID,
            evse_id="DE*ABC*ECP001*1",
        )


def test_consumed_energy_matches_ocpi_total_energy() -> None:
    """OICP ConsumedEnergy and OCPI total_energy come from the same meterStart/meterStop."""
    built = build_charge_detail_record(STOPPED, session_id=SESSION_ID, evse_id="DE*ABC*E1")
    assert built["ConsumedEnergy"] == Decimal("12.345")
