"""What an identity merge does to the ledger, as pure functions (no I/O, no clock).

A merge moves what the absorbed ids hold to the survivor, append-only: per order, an entry taking the
order's points out of the absorbed account and one putting them into the survivor's, both naming the
order (a later refund then reverses exactly those points on the survivor); points tied to no order
(bonuses) move in one such pair. What is known of each order moves with it, the earliest facts winning.
A stage bonus the survivor then holds twice (a guest's and the account's) is reversed down to one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from lifecycle_loyalty.domain.earning import DEFAULT_EARN_RULES, EarnRules, Entry

# A fact with no known time (orders recorded before times were kept) counts as the earliest.
UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
DUPLICATE_PREFIX = "duplicate_"


@dataclass(frozen=True)
class Holding:
    """Net points an account holds for one order (`order_id` None: points tied to no order)."""

    customer_id: str
    order_id: str | None
    points: int


@dataclass(frozen=True)
class OrderFacts:
    """What an account knows of one order (a row of `orders`)."""

    customer_id: str
    order_id: str
    amount: Decimal | None
    completed_event_id: str | None
    completed_at: datetime | None
    refunded_event_id: str | None
    refunded_at: datetime | None
    shipping: Decimal | None = None  # what of the amount is shipping
    currency: str | None = None


@dataclass(frozen=True)
class BonusEntry:
    """A stage bonus paid, or a duplicate of one reversed, on an id of the person."""

    kind: str  # bonus | reverse
    rule: str
    points: int


# (customer, order) -> (amount, shipping within it, currency, event id, event time)
Completions = dict[tuple[str, str], tuple[Decimal, Decimal, str | None, str, datetime]]
Refunds = dict[tuple[str, str], tuple[str, datetime]]


def merge_rule(rules: EarnRules = DEFAULT_EARN_RULES) -> str:
    return f"identity_merged/{rules.version}"


def duplicate_rule(bonus_rule: str) -> str:
    """`stage_bonus:loyalty/v1` -> `duplicate_stage_bonus:loyalty/v1`: the reversal names the bonus."""
    return DUPLICATE_PREFIX + bonus_rule


def move_holdings(holdings: list[Holding], *, survivor_id: str, merge_event_id: str,
                  rules: EarnRules = DEFAULT_EARN_RULES) -> list[Entry]:
    """A pair per non-zero holding: out of the absorbed account, into the survivor's, same order id."""
    rule, entries = merge_rule(rules), []
    for held in sorted(holdings, key=lambda h: (h.customer_id, h.order_id or "")):
        if held.points == 0 or held.customer_id == survivor_id:
            continue
        parts = (held.customer_id, held.order_id or "")
        entries += [Entry(customer_id=held.customer_id, kind="move_out", points=-held.points, rule=rule,
                          rule_version=rules.version, cause_event_id=merge_event_id, order_id=held.order_id,
                          id_parts=("out", *parts)),
                    Entry(customer_id=survivor_id, kind="move_in", points=held.points, rule=rule,
                          rule_version=rules.version, cause_event_id=merge_event_id, order_id=held.order_id,
                          id_parts=("in", *parts))]
    return entries


def move_debts(debts: dict[str, int], *, survivor_id: str, merge_event_id: str,
                rules: EarnRules = DEFAULT_EARN_RULES) -> list[Entry]:
    """A pair per absorbed account in debt: the debt out of it (no points: the balance already counts it
    through the entries that made it) and into the survivor's."""
    rule, entries = merge_rule(rules), []
    for customer, debt in sorted(debts.items()):
        entries += [Entry(customer_id=customer, kind="move_out", points=0, debt=-debt, rule=rule,
                          rule_version=rules.version, cause_event_id=merge_event_id,
                          id_parts=("out", customer, "debt")),
                    Entry(customer_id=survivor_id, kind="move_in", points=0, debt=debt, rule=rule,
                          rule_version=rules.version, cause_event_id=merge_event_id,
                          id_parts=("in", customer, "debt"))]
    return entries


def _key(event_id: str | None, at: datetime | None) -> tuple[datetime, str]:
    return (at or UNKNOWN_TIME, event_id or "")


def orders_for_survivor(rows: list[OrderFacts], *, survivor_id: str) -> tuple[Completions, Refunds]:
    """The absorbed accounts' orders as the survivor's: per order, the earliest completion and the earliest
    refund (by event time, ties to the smaller id), as `ledger.record_completions`/`record_refunds` take them."""
    completions: Completions = {}
    refunds: Refunds = {}
    for row in rows:
        key = (survivor_id, row.order_id)
        if row.completed_event_id is not None and row.amount is not None:
            known = completions.get(key)
            if known is None or _key(row.completed_event_id, row.completed_at) < _key(known[3], known[4]):
                completions[key] = (row.amount, row.shipping or Decimal(0), row.currency, row.completed_event_id,
                                    row.completed_at or UNKNOWN_TIME)
        if row.refunded_event_id is not None:
            known_refund = refunds.get(key)
            if known_refund is None or _key(row.refunded_event_id, row.refunded_at) < _key(*known_refund):
                refunds[key] = (row.refunded_event_id, row.refunded_at or UNKNOWN_TIME)
    return completions, refunds


def scoped_to_merge(entry: Entry, merge_event_id: str) -> Entry:
    """An order entry a merge decides (a refund reversing moved-in points...) keeps its cause and rule, but
    its id names the merge and the account: the same refund may already have reversed points elsewhere."""
    return replace(entry, id_parts=("merge", merge_event_id, entry.customer_id))


def duplicate_bonus_reversals(held: list[BonusEntry], *, survivor_id: str, merge_event_id: str) -> list[Entry]:
    """Per bonus rule, what the person (the survivor and every id merged into them) holds beyond one bonus,
    less what earlier merges already reversed, reversed in one entry."""
    paid: dict[str, list[int]] = defaultdict(list)
    reversed_points: dict[str, int] = defaultdict(int)
    for entry in held:
        if entry.kind == "bonus":
            paid[entry.rule].append(entry.points)
        elif entry.rule.startswith(DUPLICATE_PREFIX):
            reversed_points[entry.rule.removeprefix(DUPLICATE_PREFIX)] -= entry.points
    entries = []
    for rule, points in sorted(paid.items()):
        extra = sum(points) - max(points) - reversed_points[rule]
        if extra > 0:
            entries.append(Entry(customer_id=survivor_id, kind="reverse", points=-extra, rule=duplicate_rule(rule),
                                 cause_event_id=merge_event_id, id_parts=(survivor_id,)))
    return entries
