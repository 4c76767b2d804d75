"""Lots: the points a customer holds, lot by lot, and how entries move points between lots and debt.
Pure functions (no I/O, no clock: `now` and `at` are parameters).

Every credit (an order earning, a stage bonus, points coming back) is a lot: pending until `available_at`
(the return window), then available until `expires_at` (its policy, fixed when it is earned). A credit
first settles the customer's debt. Spending takes the oldest available lots first. A debit tied to an
order (a refund's reversal) takes from that order's lots; what they no longer hold (spent) becomes debt,
never a negative lot: `remaining >= 0` is also a constraint of the `lots` table.

Invariants, per customer: sum(entry.points) = sum(lot.remaining) - debt; sum(entry.debt) = debt >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from lifecycle_loyalty.domain.earning import Entry, LotPolicy, entry_id


@dataclass(frozen=True)
class Lot:
    id: str
    customer_id: str
    order_id: str | None
    points: int  # credited when the lot was made
    remaining: int  # still held (pending or available)
    earned_at: datetime
    available_at: datetime
    expires_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def available(self, now: datetime) -> bool:
        return self.available_at <= now and not self.expired(now)


@dataclass(frozen=True)
class Holdings:
    customer_id: str
    lots: tuple[Lot, ...] = ()
    debt: int = 0

    def lot(self, lot_id: str) -> Lot:
        return next(lot for lot in self.lots if lot.id == lot_id)

    def with_lot(self, lot: Lot) -> Holdings:
        others = tuple(other for other in self.lots if other.id != lot.id)
        return replace(self, lots=tuple(sorted((*others, lot), key=lambda x: (x.earned_at, x.id))))


@dataclass(frozen=True)
class Posting:
    entries: list[Entry]
    holdings: Holdings
    taken: tuple[tuple[str, int], ...] = ()  # (lot id, points) a spend took


@dataclass(frozen=True)
class Summary:
    pending: int
    available: int
    debt: int
    balance: int  # pending + available - debt


def summarize(holdings: Holdings, now: datetime) -> Summary:
    live = [lot for lot in holdings.lots if not lot.expired(now)]
    pending = sum(lot.remaining for lot in live if lot.available_at > now)
    available = sum(lot.remaining for lot in live if lot.available_at <= now)
    return Summary(pending=pending, available=available, debt=holdings.debt,
                   balance=pending + available - holdings.debt)


def credit(holdings: Holdings, entry: Entry, *, at: datetime, policy: LotPolicy) -> Posting:
    """A positive entry: a new lot (its id the entry's), after settling debt from it."""
    settled = min(holdings.debt, entry.points)
    at = entry.at or at
    lot_id = entry_id(entry)
    lot = Lot(id=lot_id, customer_id=holdings.customer_id, order_id=entry.order_id, points=entry.points,
              remaining=entry.points - settled, earned_at=at, available_at=at + policy.pending,
              expires_at=policy.expiry.expires_at(at))
    entries = [replace(entry, lot_id=lot_id)]
    if settled:
        entries.append(Entry(customer_id=holdings.customer_id, kind="settlement", points=0, debt=-settled,
                             rule="debt_settlement", rule_version=entry.rule_version,
                             cause_event_id=entry.cause_event_id, order_id=entry.order_id, lot_id=lot_id,
                             id_parts=(*entry.id_parts, entry.rule, "settlement")))
    held = replace(holdings.with_lot(lot), debt=holdings.debt - settled)
    return Posting(entries=entries, holdings=held)


def debit(holdings: Holdings, entry: Entry) -> Posting:
    """A negative entry tied to an order (or, order None, to no order: a bonus reversed): taken from that
    order's lots, oldest first; what they no longer hold becomes debt (a `debt` entry)."""
    wanted, lots = -entry.points, holdings
    for lot in holdings.lots:
        if wanted == 0:
            break
        if lot.order_id == entry.order_id and lot.remaining > 0:
            take = min(wanted, lot.remaining)
            lots = lots.with_lot(replace(lot, remaining=lot.remaining - take))
            wanted -= take
    taken = -entry.points - wanted
    entries = [replace(entry, points=-taken)] if taken else []
    if wanted:
        entries.append(Entry(customer_id=holdings.customer_id, kind="debt", points=-wanted, debt=wanted,
                             rule=entry.rule, rule_version=entry.rule_version, cause_event_id=entry.cause_event_id,
                             order_id=entry.order_id, id_parts=(*entry.id_parts, "debt")))
    return Posting(entries=entries, holdings=replace(lots, debt=lots.debt + wanted))


def post(holdings: Holdings, entry: Entry, *, at: datetime, policy: LotPolicy) -> Posting:
    if entry.points > 0:
        return credit(holdings, entry, at=at, policy=policy)
    if entry.points < 0:
        return debit(holdings, entry)
    return Posting(entries=[], holdings=holdings)


def post_all(holdings: Holdings, entries: list[Entry], *, at: datetime, policy: LotPolicy) -> Posting:
    posted: list[Entry] = []
    for entry in entries:
        posting = post(holdings, entry, at=at, policy=policy)
        posted += posting.entries
        holdings = posting.holdings
    return Posting(entries=posted, holdings=holdings)


def spend(holdings: Holdings, entry: Entry, *, now: datetime) -> Posting | None:
    """`entry` (points < 0, kind spend) taken from the oldest available lots; None when they hold too few."""
    wanted, lots, taken = -entry.points, holdings, []
    usable = [lot for lot in holdings.lots if lot.available(now) and lot.remaining > 0]
    if sum(lot.remaining for lot in usable) - holdings.debt < wanted:  # debt: none of it is spendable
        return None
    for lot in usable:
        if wanted == 0:
            break
        take = min(wanted, lot.remaining)
        lots = lots.with_lot(replace(lot, remaining=lot.remaining - take))
        taken.append((lot.id, take))
        wanted -= take
    return Posting(entries=[entry], holdings=lots, taken=tuple(taken))


def give_back(holdings: Holdings, entry: Entry, taken: tuple[tuple[str, int], ...]) -> Posting:
    """A spend undone (a redemption cancelled): the points go back to the lots they came from, with their
    original availability and expiry, after settling debt from them."""
    lots, debt = holdings, holdings.debt
    settled = 0
    for lot_id, points in taken:
        lot = lots.lot(lot_id)
        settle = min(debt, points)
        debt -= settle
        settled += settle
        lots = lots.with_lot(replace(lot, remaining=lot.remaining + points - settle))
    entries = [entry]
    if settled:
        entries.append(Entry(customer_id=holdings.customer_id, kind="settlement", points=0, debt=-settled,
                             rule="debt_settlement", rule_version=entry.rule_version,
                             cause_event_id=entry.cause_event_id, id_parts=(*entry.id_parts, entry.rule, "settlement")))
    return Posting(entries=entries, holdings=replace(lots, debt=debt))


def expire(holdings: Holdings, *, now: datetime, rule_version: str) -> Posting:
    """Every lot past its expiry that still holds points: an `expire` entry naming the lot and its order."""
    lots, entries = holdings, []
    for lot in holdings.lots:
        if lot.expired(now) and lot.remaining > 0:
            entries.append(Entry(customer_id=holdings.customer_id, kind="expire", points=-lot.remaining,
                                 rule="expiry", rule_version=rule_version, cause_event_id=f"lot:{lot.id}",
                                 order_id=lot.order_id, lot_id=lot.id, id_parts=(now.isoformat(),)))
            lots = lots.with_lot(replace(lot, remaining=0))
    return Posting(entries=entries, holdings=lots)
