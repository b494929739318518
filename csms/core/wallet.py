"""Wallet decisions: what a posting is, what a prepaid driver must hold to start, and when
their running sessions must stop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any

from csms.core.money import ZERO
from csms.core.ocpi import TariffDimensionType
from csms.core.tariff_ocpi import tariff_from_ocpi


class PostingKind(StrEnum):
    """Why a ledger entry was made (docs/tariffs.md, "The wallet")."""

    TOPUP = "topup"
    FEE = "fee"
    VOUCHER = "voucher"
    REFUND = "refund"
    SESSION = "session"
    SUBSCRIPTION = "subscription"


def prepaid_minimum(tariff: Mapping[str, Any]) -> Decimal:
    """What a prepaid balance must exceed to start under an OCPI Tariff.

    The tariff's min_price (incl. VAT when given, mod_tariffs §Tariff Object), else its
    start fee (the first unrestricted FLAT component, incl. its VAT), else nothing: then
    any balance above zero will do.
    """
    parsed = tariff_from_ocpi(tariff)
    if parsed.min_price is not None:
        price = parsed.min_price
        return price.incl_vat if price.incl_vat is not None else price.excl_vat
    for element in parsed.elements:
        flat = element.component(TariffDimensionType.FLAT)
        if flat is not None and element.restrictions.reservation is None:
            vat = flat.vat if flat.vat is not None else ZERO
            return flat.price * (1 + vat / 100)
    return ZERO


def available_balance(balance: Decimal, *, open_costs: Iterable[Decimal]) -> Decimal:
    """What a prepaid driver can still spend: the ledger balance less the running cost of
    their open sessions, which the ledger is only charged with when their CDRs are made."""
    return balance - sum(open_costs, ZERO)


def may_start(balance: Decimal, *, open_costs: Iterable[Decimal], minimum: Decimal) -> bool:
    """A prepaid start is allowed when what is available exceeds the tariff's minimum.

    `minimum` is never negative (`prepaid_minimum`), so nothing available never starts.
    """
    return available_balance(balance, open_costs=open_costs) > minimum


def balance_exceeded(
    balance: Decimal, *, own_cost: Decimal, other_costs: Iterable[Decimal]
) -> bool:
    """True when a session must stop: the running costs of all the driver's open sessions
    together reached the balance (docs/tariffs.md, "Prepaid").

    Spent money is never given back, so once the sum reaches the balance it stays there:
    no session of the driver may go on, and each stops at its next reading. Each can thus
    spend at most one metering interval beyond the balance (tests/core/test_wallet.py).
    """
    return own_cost + sum(other_costs, ZERO) >= balance
