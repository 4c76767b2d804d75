"""A hypothesis state machine over loyalty's ledger decisions (domain.earning, domain.lots, domain.merging):
random earn / spend (redeem) / cancel / expire / refund / partial refund / merge / time passing keep every
invariant of the ledger and match a small reference model written here, which counts points one by one
("coins") instead of lots and entries.

The ledger side is driven the way the handlers and routes drive it (their SQL's sums done in Python: what an
order holds, what expired of it on any id of the person, what an account holds per order for a merge); the
database side of the same decisions is covered by the integration tests (test_loyalty_*.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from lifecycle_loyalty.domain.earning import EarnRules, Entry, OrderState, decide_order_entry
from lifecycle_loyalty.domain.lots import Holdings, expire, give_back, post_all, spend, summarize
from lifecycle_loyalty.domain.merging import Holding, move_debts, move_holdings

T0 = datetime(2026, 1, 5, tzinfo=UTC)
RULES = EarnRules(version="sm-v1", pending_days=2, expiry={"kind": "after_days", "count": 6})
PENDING, LIFETIME = timedelta(days=2), timedelta(days=6)
IDS = ("a", "b", "c")


@dataclass
class Coin:
    """One point of the reference model."""

    owner: str
    order: str
    earned_at: datetime
    state: str = "held"  # held | spent | expired | reversed | settled
    redemption: str | None = None


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        # The ledger, as the service keeps it.
        self.entries: list[Entry] = []
        self.held = {c: Holdings(c) for c in IDS}
        self.orders: dict[str, dict] = {}  # order id -> its facts (order ids are unique across people here)
        self.alias: dict[str, str] = {}
        self.redemptions: dict[str, tuple[str, int, tuple[tuple[str, int], ...], bool]] = {}
        # The reference model.
        self.coins: list[Coin] = []
        self.debt = dict.fromkeys(IDS, 0)
        self.owed: dict[str, int] = {}  # per order: points reversed as debt
        self.spent: dict[str, list[Coin]] = {}
        self.count = 0

    # ---- helpers -------------------------------------------------------------------------------------
    def person(self, customer: str) -> str:
        return self.alias.get(customer, customer)

    def tick(self) -> None:
        self.now += timedelta(minutes=1)
        self.count += 1

    def book(self, customer: str, decided: list[Entry]) -> None:
        posting = post_all(self.held[customer], decided, at=self.now, policy=RULES.lots)
        self.entries += posting.entries
        self.held[customer] = posting.holdings

    def order_state(self, order_id: str) -> OrderState:
        facts, customer = self.orders[order_id], self.orders[order_id]["customer"]
        held = sum(e.points for e in self.entries if e.customer_id == customer and e.order_id == order_id)
        expired = -sum(e.points for e in self.entries if e.kind == "expire" and e.order_id == order_id
                       and self.person(e.customer_id) == customer)
        return OrderState(customer_id=customer, order_id=order_id, amount=facts["amount"], completed_event_id=order_id,
                          refunded_event_id=facts["refund"], held=held, expired=expired, completed_at=facts["at"],
                          refunded_part=facts["part"])

    def model_target(self, order_id: str) -> int:
        facts = self.orders[order_id]
        points = int(facts["amount"])
        if facts["refund"] is None:
            return points
        if facts["part"] is None or facts["part"] >= facts["amount"]:
            return 0
        return math.floor(points * (facts["amount"] - facts["part"]) / facts["amount"])

    def model_credit(self, person: str, order: str, points: int, at: datetime) -> None:
        coins = [Coin(owner=person, order=order, earned_at=at) for _ in range(points)]
        for coin in coins[:min(self.debt[person], points)]:
            coin.state = "settled"
        self.debt[person] -= min(self.debt[person], points)
        self.coins += coins

    def available(self, person: str) -> list[Coin]:
        return [c for c in self.coins if c.owner == person and c.state == "held"
                and c.earned_at + PENDING <= self.now < c.earned_at + LIFETIME]

    # ---- rules ----------------------------------------------------------------------------------------
    @rule(customer=st.sampled_from(IDS), amount=st.integers(min_value=0, max_value=12))
    def complete_an_order(self, customer, amount):
        self.tick()
        person, order_id = self.person(customer), f"o{self.count}"
        self.orders[order_id] = {"customer": person, "amount": Decimal(amount), "refund": None, "part": None,
                                 "at": self.now}
        self.book(person, [e for e in [decide_order_entry(self.order_state(order_id), RULES)] if e])
        if amount:
            self.model_credit(person, order_id, amount, self.now)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), part=st.one_of(st.none(), st.integers(min_value=1, max_value=12)))
    def refund_an_order(self, data, part):
        self.tick()
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        facts = self.orders[order_id]
        facts["refund"] = facts["refund"] or f"r-{order_id}"
        if part is None:
            facts["whole"] = True
        else:
            facts["total"] = facts.get("total", 0) + part
        facts["part"] = None if facts.get("whole") else Decimal(facts["total"])
        person = facts["customer"]
        self.book(person, [e for e in [decide_order_entry(self.order_state(order_id), RULES)] if e])
        # model: the order's coins still held go back, the rest of what it should give back becomes debt
        mine = [c for c in self.coins if c.order == order_id]
        expired = sum(c.state == "expired" for c in mine)
        holding = len(mine) - expired - sum(c.state == "reversed" for c in mine) - self.owed.get(order_id, 0)
        give = holding - max(0, self.model_target(order_id) - expired)
        for coin in [c for c in mine if c.state == "held"][:max(0, give)]:
            coin.state = "reversed"
            give -= 1
        if give > 0:
            self.owed[order_id] = self.owed.get(order_id, 0) + give
            self.debt[person] += give

    @rule(customer=st.sampled_from(IDS), cost=st.integers(min_value=1, max_value=15))
    def redeem(self, customer, cost):
        self.tick()
        person, key = self.person(customer), f"s{self.count}"
        entry = Entry(customer_id=person, kind="spend", points=-cost, rule="redemption:x", cause_event_id=key)
        posting = spend(self.held[person], entry, now=self.now)
        usable = self.available(person)
        assert (posting is not None) == (len(usable) - self.debt[person] >= cost)
        if posting is not None:
            self.entries += posting.entries
            self.held[person] = posting.holdings
            self.redemptions[key] = (person, cost, posting.taken, False)
            taken = sorted(usable, key=lambda c: c.earned_at)[:cost]
            for coin in taken:
                coin.state, coin.redemption = "spent", key
            self.spent[key] = taken

    @precondition(lambda self: any(not cancelled for *_, cancelled in self.redemptions.values()))
    @rule(data=st.data())
    def cancel_a_redemption(self, data):
        self.tick()
        key = data.draw(st.sampled_from(sorted(k for k, (*_, cancelled) in self.redemptions.items() if not cancelled)))
        _, cost, taken, _ = self.redemptions[key]
        person = self.person(self.redemptions[key][0])
        entry = Entry(customer_id=person, kind="cancel", points=cost, rule="redemption_cancelled:x",
                      cause_event_id=key)
        posting = give_back(self.held[person], entry, taken)
        self.entries += posting.entries
        self.held[person] = posting.holdings
        self.redemptions[key] = (person, cost, taken, True)
        for coin in self.spent[key]:
            if self.debt[person]:
                coin.state = "settled"
                self.debt[person] -= 1
            else:
                coin.state = "held"

    @rule(days=st.integers(min_value=0, max_value=4))
    def time_passes_and_lots_expire(self, days):
        self.now += timedelta(days=days)
        for customer in IDS:
            posting = expire(self.held[customer], now=self.now, rule_version=RULES.version)
            self.entries += posting.entries
            self.held[customer] = posting.holdings
        for coin in self.coins:
            if coin.state == "held" and coin.earned_at + LIFETIME <= self.now:
                coin.state = "expired"

    @rule(absorbed=st.sampled_from(IDS), survivor=st.sampled_from(IDS))
    def merge(self, absorbed, survivor):
        absorbed, survivor = self.person(absorbed), self.person(survivor)
        if absorbed == survivor:
            return
        self.tick()
        key = f"m{self.count}"
        net: dict[str | None, int] = {}
        for e in self.entries:
            if e.customer_id == absorbed:
                net[e.order_id] = net.get(e.order_id, 0) + e.points
        holdings = [Holding(absorbed, order, points) for order, points in net.items() if points]
        debt = self.held[absorbed].debt
        self.entries += move_holdings(holdings, survivor_id=survivor, merge_event_id=key, rules=RULES)
        self.entries += move_debts({absorbed: debt} if debt else {}, survivor_id=survivor, merge_event_id=key,
                                   rules=RULES)
        moved = tuple(replace(lot, customer_id=survivor) for lot in self.held[absorbed].lots)
        lots = tuple(sorted((*self.held[survivor].lots, *moved), key=lambda x: (x.earned_at, x.id)))
        self.held[survivor] = replace(self.held[survivor], lots=lots, debt=self.held[survivor].debt + debt)
        self.held[absorbed] = Holdings(absorbed)
        for alias, target in list(self.alias.items()):
            if target == absorbed:
                self.alias[alias] = survivor
        self.alias[absorbed] = survivor
        for facts in self.orders.values():
            if facts["customer"] == absorbed:
                facts["customer"] = survivor
        # model
        for coin in self.coins:
            if coin.owner == absorbed:
                coin.owner = survivor
        self.debt[survivor] += self.debt[absorbed]
        self.debt[absorbed] = 0

    # ---- invariants -----------------------------------------------------------------------------------
    @invariant()
    def the_ledger_keeps_its_invariants_and_matches_the_model(self):
        for customer in IDS:
            held = self.held[customer]
            entries = [e for e in self.entries if e.customer_id == customer]
            assert all(0 <= lot.remaining <= lot.points for lot in held.lots)
            assert all(lot.customer_id == customer for lot in held.lots)
            assert held.debt >= 0 and sum(e.debt for e in entries) == held.debt
            balance = sum(e.points for e in entries)
            assert balance == sum(lot.remaining for lot in held.lots) - held.debt
            coins = [c for c in self.coins if c.owner == customer and c.state == "held"]
            assert balance == len(coins) - self.debt[customer]
            state = summarize(held, self.now)
            assert state.available == len(self.available(customer))
            assert state.pending == sum(self.now < c.earned_at + PENDING and self.now < c.earned_at + LIFETIME
                                        for c in coins)
            assert state.debt == self.debt[customer]
            if customer in self.alias:
                assert balance == 0 and not held.lots
        for key, (_, cost, _, _) in self.redemptions.items():
            spends = [e for e in self.entries if e.cause_event_id == key and e.kind == "spend"]
            assert len(spends) == 1 and spends[0].points == -cost


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
