"""The prepaid rules over all of a driver's sessions: what a start may use, when sessions
stop, and (hypothesis) that together they never spend more than the balance plus one
metering interval of each session."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.money import ZERO
from csms.core.wallet import available_balance, balance_exceeded, may_start

D = Decimal


def test_the_available_balance_is_the_balance_less_the_open_sessions() -> None:
    assert available_balance(D("10.00"), open_costs=[D("4.20"), D("1.30")]) == D("4.50")
    assert available_balance(D("10.00"), open_costs=[]) == D("10.00")


def test_a_start_needs_more_than_the_minimum_after_the_open_sessions() -> None:
    assert may_start(D("3.00"), open_costs=[D("1.79")], minimum=D("1.20"))
    assert not may_start(D("3.00"), open_costs=[D("1.80")], minimum=D("1.20"))
    assert not may_start(D("3.00"), open_costs=[D("3.00")], minimum=ZERO)
    assert not may_start(ZERO, open_costs=[], minimum=ZERO)


def test_sessions_stop_when_their_sum_reaches_the_balance() -> None:
    # Each below 3.00 alone; together they reach it.
    assert balance_exceeded(D("3.00"), own_cost=D("1.80"), other_costs=[D("1.20")])
    assert not balance_exceeded(D("3.00"), own_cost=D("1.79"), other_costs=[D("1.20")])
    assert balance_exceeded(D("3.00"), own_cost=D("3.00"), other_costs=[])


cents = st.decimals(min_value=0, max_value=5, places=2)


@settings(max_examples=300)
@given(
    balance=st.decimals(min_value=-5, max_value=50, places=2),
    readings=st.lists(st.lists(cents, min_size=1, max_size=25), min_size=1, max_size=4),
    order=st.lists(st.integers(min_value=0, max_value=3), max_size=120),
)
def test_a_driver_never_spends_beyond_the_balance_and_one_interval_per_session(
    balance: Decimal, readings: list[list[Decimal]], order: list[int]
) -> None:
    """Sessions start, report their cost at each reading and stop as the rules say, in any
    interleaving; a stopped or ended session's cost goes to the ledger (its CDR)."""
    n = len(readings)
    ledger = balance
    spent = [ZERO] * n
    taken = [0] * n
    state = ["idle"] * n

    def open_costs(excluding: int) -> list[Decimal]:
        return [spent[j] for j in range(n) if state[j] == "open" and j != excluding]

    for i in (k % n for k in order):
        if state[i] == "idle":
            allowed = may_start(ledger, open_costs=open_costs(i), minimum=ZERO)
            state[i] = "open" if allowed else "refused"
        elif state[i] == "open" and taken[i] == len(readings[i]):
            ledger, state[i] = ledger - spent[i], "ended"  # the driver stopped first
        elif state[i] == "open":
            spent[i] += readings[i][taken[i]]
            taken[i] += 1
            if balance_exceeded(ledger, own_cost=spent[i], other_costs=open_costs(i)):
                ledger, state[i] = ledger - spent[i], "stopped"
    started = [i for i in range(n) if state[i] not in ("idle", "refused")]
    one_interval_each = sum((max(readings[i]) for i in started), ZERO)
    assert sum(spent) <= max(balance, ZERO) + one_interval_each
    assert ledger == balance - sum(spent[i] for i in range(n) if state[i] != "open")
