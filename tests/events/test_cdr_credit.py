"""The credit CDR of an estimate (OCPI 2.2.1 mod_cdrs §Credit CDRs), built without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from csms.core.transactions import SessionEnd
from csms.events import build
from csms.events.models_ocpi import Cdr
from tests.sessions import LOCATION, PARTY, session_facts

T0 = datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_the_credit_repeats_the_estimate_with_its_costs_negated() -> None:
    """New id with -C, credit and its reference set, total_cost negated, the rest the same."""
    facts = session_facts(T0, stop=T0 + timedelta(hours=1), meter_stop_wh=1_003_000)
    first = build.cdr_created(
        facts,
        party=PARTY,
        location=LOCATION,
        at=T0 + timedelta(hours=1),
        remark="Forced",
        end=SessionEnd.FORCED,
        estimated=True,
    )
    # A priced estimate (a tariff applied): the credit must cancel what was billed.
    first.data["ocpi"]["total_cost"] = {"excl_vat": 1.5, "incl_vat": 1.815}
    first.data["cost"] = {"currency": "EUR", "exclVat": 1.5, "inclVat": 1.815}
    credit = build.cdr_credit("CP001", first.data, at=T0 + timedelta(hours=2))
    model = Cdr.model_validate_json(orjson.dumps(credit.data["ocpi"]))
    assert (model.id, model.credit, model.credit_reference_id) == ("42-C", True, "42")
    assert (model.total_cost.excl_vat, model.total_cost.incl_vat) == (
        Decimal("-1.5"),
        Decimal("-1.815"),
    )
    unchanged = {"id", "credit", "credit_reference_id", "total_cost", "last_updated"}
    original = Cdr.model_validate_json(orjson.dumps(first.data["ocpi"]))
    assert model.model_dump(exclude=unchanged) == original.model_dump(exclude=unchanged)
    assert credit.type == "cdr.created"
    assert credit.data | {"ocpi": None} == {
        **first.data,
        "transactionId": 42,
        "cdrId": "42-C",
        "reason": "forced",
        "estimated": True,
        "credit": True,
        "creditReferenceId": "42",
        "cost": {"currency": "EUR", "exclVat": -1.5, "inclVat": -1.815},
        "ocpi": None,
        "oicp": None,
    }
    assert credit.data["energyWh"] == first.data["energyWh"] == 3000


def test_a_free_estimate_is_credited_with_zero_not_minus_zero() -> None:
    """A zero total_cost stays 0 in the credit (no -0.0 on the wire)."""
    facts = session_facts(T0, stop=T0 + timedelta(minutes=5), meter_stop_wh=1_000_000)
    first = build.cdr_created(
        facts, party=PARTY, location=LOCATION, at=T0, remark=None, end=SessionEnd.FORCED
    )
    credit = build.cdr_credit("CP001", first.data, at=T0)
    assert orjson.dumps(credit.data["ocpi"]["total_cost"]) == b'{"excl_vat":0.0}'
