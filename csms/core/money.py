"""Money: amounts are Decimal, rounded once, to the currency's minor unit, half up.

The rounding rule (docs/tariffs.md, "Rounding"): the cost engine computes every amount
exactly and rounds only what it reports, to the minor unit of the currency (2 decimals for
EUR, 0 for JPY, 3 for KWD), half up: each cost line (fixed, energy, time, parking,
reservation) on its own, and the total from the exact sum of the lines (so the total may
differ from the sum of the rounded lines by the rounding, as in the OCPI 2.2.1 mod_tariffs
complex example: 2.875 + 3.30 + 4.125 = 10.30). OCPI numbers carry at most 4 decimals
(OCPI types §number), which every minor unit fits. Never a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)

# Currencies whose minor unit is not 2 decimals (ISO 4217 as the OCPI `currency` field names
# it, OCPI mod_tariffs §Tariff Object); every other currency has cents.
_MINOR_UNITS = {
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "CLF": 4,
    "UYW": 4,
}


def minor_unit(currency: str) -> int:
    """Decimals of the currency's minor unit: 2 unless listed otherwise."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """The amount rounded to the currency's minor unit, half up (docs/tariffs.md)."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Money:
    """An amount in a currency; `amount` is already rounded to its minor unit."""

    currency: str
    amount: Decimal

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str) -> Money:
        """Money rounded to the minor unit (a str or int, never a float)."""
        return cls(currency=currency, amount=round_money(Decimal(amount), currency))


# Stored amounts are integers in ten-thousandths of the currency unit: exact on SQLite and
# PostgreSQL alike, summable in SQL (a balance is SUM over the ledger), and every OCPI
# number (4 decimals, OCPI types §number) fits.
UNITS_PER_CURRENCY_UNIT = 10_000


def to_units(amount: Decimal) -> int:
    """An amount as stored: ten-thousandths, exact (raises on finer amounts).

    Raises:
        ValueError: the amount has more than 4 decimals.
    """
    scaled = amount * UNITS_PER_CURRENCY_UNIT
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount {amount} has more than 4 decimals")
    return int(scaled)


def from_units(units: int) -> Decimal:
    """A stored amount back as a Decimal."""
    return Decimal(units).scaleb(-4)
