"""What an identity merge does to loyalty's ledger, and the stage bonus once per person: pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from lifecycle_loyalty.domain.earning import Entry, decide_stage_bonus, entry_id
from lifecycle_loyalty.domain.merging import (
    BonusEntry,
    Holding,
    OrderFacts,
    duplicate_bonus_reversals,
    move_holdings,
    orders_for_survivor,
    scoped_to_merge,
)
from lifecycle_shared.events import derived_event_id

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BONUS = "stage_bonus:loyalty/default-v1"
DUPLICATE = "duplicate_stage_bonus:loyalty/default-v1"


def moved(entries: list[Entry]) -> list[tuple[str, str, int, str | None]]:
    return [(e.customer_id, e.kind, e.points, e.order_id) for e in entries]


@pytest.mark.parametrize(("holdings", "expected"), [
    ([], []),
    ([Holding("anon", "o1", 80)], [("anon", "move_out", -80, "o1"), ("user", "move_in", 80, "o1")]),
    ([Holding("anon", None, 500), Holding("anon", "o1", 80)],  # bonuses (no order) move in their own pair
     [("anon", "move_out", -500, None), ("user", "move_in", 500, None),
      ("anon", "move_out", -80, "o1"), ("user", "move_in", 80, "o1")]),
    ([Holding("anon", "o1", 0)], []),  # a refunded order: nothing to move
    ([Holding("anon", "o1", -30)], [("anon", "move_out", 30, "o1"), ("user", "move_in", -30, "o1")]),
    ([Holding("user", "o1", 80)], []),  # the survivor's own points stay where they are
    ([Holding("b", "o1", 5), Holding("a", "o1", 7)],
     [("a", "move_out", -7, "o1"), ("user", "move_in", 7, "o1"), ("b", "move_out", -5, "o1"),
      ("user", "move_in", 5, "o1")]),
])
def test_a_merge_moves_each_holding_in_a_pair_that_names_the_order(holdings, expected):
    entries = move_holdings(holdings, survivor_id="user", merge_event_id="merge-1")
    assert moved(entries) == expected
    assert {(e.rule, e.cause_event_id) for e in entries} <= {("identity_merged/default-v1", "merge-1")}
    assert len({entry_id(e) for e in entries}) == len(entries)  # two absorbed ids, one order: distinct ids


def test_the_same_merge_decides_the_same_entry_ids_and_another_merge_other_ones():
    holdings = [Holding("anon", "o1", 80)]
    first, again = (move_holdings(holdings, survivor_id="user", merge_event_id="merge-1") for _ in range(2))
    other = move_holdings(holdings, survivor_id="user", merge_event_id="merge-2")
    assert [entry_id(e) for e in first] == [entry_id(e) for e in again]
    assert not {entry_id(e) for e in first} & {entry_id(e) for e in other}


def test_entries_without_id_parts_keep_the_ids_they_always_had():
    entry = Entry(customer_id="c", kind="earn", points=5, rule="points_per_currency_unit/default-v1",
                  cause_event_id="e1", order_id="o1")
    assert entry_id(entry) == derived_event_id("e1", "loyalty", "points_per_currency_unit/default-v1")


def test_an_entry_a_merge_decides_for_a_refund_is_not_the_one_the_refund_made_elsewhere():
    reversal = Entry(customer_id="anon", kind="reverse", points=-80, rule="refund_reversal/default-v1",
                     cause_event_id="refund-1", order_id="o1")
    on_survivor = scoped_to_merge(replace(reversal, customer_id="user"), "merge-1")
    assert (on_survivor.kind, on_survivor.cause_event_id, on_survivor.rule) == ("reverse", "refund-1", reversal.rule)
    assert entry_id(on_survivor) != entry_id(reversal)


def facts(customer: str, order: str, *, completed: tuple[str, int, str] | None = None,
          refunded: tuple[str, int] | None = None) -> OrderFacts:
    """`completed`: (event id, minutes after T0, amount); `refunded`: (event id, minutes after T0)."""
    return OrderFacts(customer_id=customer, order_id=order,
                      amount=Decimal(completed[2]) if completed else None,
                      completed_event_id=completed[0] if completed else None,
                      completed_at=T0.replace(minute=completed[1]) if completed else None,
                      refunded_event_id=refunded[0] if refunded else None,
                      refunded_at=T0.replace(minute=refunded[1]) if refunded else None)


@pytest.mark.parametrize(("rows", "completions", "refunds"), [
    ([], {}, {}),
    ([facts("anon", "o1", completed=("c1", 0, "80"))], {"o1": ("80", "c1", 0)}, {}),
    ([facts("anon", "o1", refunded=("r1", 5))], {}, {"o1": ("r1", 5)}),  # a refund known before its order
    ([facts("a", "o1", completed=("c2", 9, "30")), facts("b", "o1", completed=("c1", 3, "80"), refunded=("r1", 7))],
     {"o1": ("80", "c1", 3)}, {"o1": ("r1", 7)}),  # both held the order: the earliest facts win
    ([facts("a", "o1", completed=("c2", 3, "30")), facts("b", "o1", completed=("c1", 3, "80"))],
     {"o1": ("80", "c1", 3)}, {}),  # same time: the smaller event id
    ([facts("a", "o1", completed=("c1", 0, "1")), facts("a", "o2", completed=("c2", 0, "2"))],
     {"o1": ("1", "c1", 0), "o2": ("2", "c2", 0)}, {}),
])
def test_orders_move_to_the_survivor_with_their_earliest_facts(rows, completions, refunds):
    got_completions, got_refunds = orders_for_survivor(rows, survivor_id="user")
    assert got_completions == {("user", o): (Decimal(a), Decimal(0), None, e, T0.replace(minute=m))
                               for o, (a, e, m) in completions.items()}
    assert got_refunds == {("user", o): (e, T0.replace(minute=m)) for o, (e, m) in refunds.items()}


def test_an_order_fact_without_a_time_counts_as_the_earliest():
    legacy = OrderFacts(customer_id="a", order_id="o1", amount=Decimal(5), completed_event_id="old",
                        completed_at=None, refunded_event_id="r-old", refunded_at=None)
    completions, refunds = orders_for_survivor([facts("b", "o1", completed=("c1", 0, "9"), refunded=("r1", 1)),
                                                legacy], survivor_id="user")
    assert completions[("user", "o1")][3] == "old" and refunds[("user", "o1")][0] == "r-old"


@pytest.mark.parametrize(("held", "reversed_points"), [
    ([], None),
    ([BonusEntry("bonus", BONUS, 500)], None),  # one bonus: kept
    ([BonusEntry("bonus", BONUS, 500), BonusEntry("bonus", BONUS, 500)], -500),  # guest's and account's
    ([BonusEntry("bonus", BONUS, 500)] * 3, -1000),  # three ids of one person
    ([BonusEntry("bonus", BONUS, 500)] * 2 + [BonusEntry("reverse", DUPLICATE, -500)], None),  # already reversed
    ([BonusEntry("bonus", BONUS, 500)] * 3 + [BonusEntry("reverse", DUPLICATE, -500)], -500),  # a third id joins
    ([BonusEntry("bonus", BONUS, 500), BonusEntry("bonus", "stage_bonus:vip/default-v1", 900)], None),  # two bonuses
    ([BonusEntry("bonus", BONUS, 500), BonusEntry("bonus", "stage_bonus:loyalty/v2", 700)], None),  # another version
    ([BonusEntry("reverse", "refund_reversal/default-v1", -5)], None),
])
def test_a_stage_bonus_the_person_holds_twice_is_reversed_down_to_one(held, reversed_points):
    entries = duplicate_bonus_reversals(held, survivor_id="user", merge_event_id="merge-1")
    expected = [] if reversed_points is None else [("user", "reverse", reversed_points, None)]
    assert moved(entries) == expected
    assert all((e.rule, e.cause_event_id) == (DUPLICATE, "merge-1") for e in entries)


@pytest.mark.parametrize(("to_stage", "held_rules", "points"), [
    ("loyalty", set(), 500),
    ("loyalty", {BONUS}, None),  # held already (paid to this id, or moved in from a guest's)
    ("loyalty", {"stage_bonus:loyalty/v0"}, 500),  # another rule version's bonus is another bonus
    ("consideration", set(), None),  # no bonus for that stage
])
def test_the_stage_bonus_is_paid_once_per_person(to_stage, held_rules, points):
    bonus = decide_stage_bonus("user", to_stage, held_rules=held_rules, verified=True)
    assert (bonus.points if bonus else None) == points
    if bonus:
        assert (bonus.rule, bonus.cause_event_id, bonus.kind) == (BONUS, "customer:user", "bonus")


def test_an_unverified_move_pays_no_stage_bonus():
    assert decide_stage_bonus("user", "loyalty", held_rules=set(), verified=False) is None
