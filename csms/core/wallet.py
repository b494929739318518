"""Wallet decisions: what a posting is, and what a prepaid driver must hold to start."""

from __future__ import annotations

from collections.abc import Mapping
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
