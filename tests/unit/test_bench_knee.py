"""The bench's knee phase: its workload keeps each visitor's journey in order, and each POSTed touchpoint
counts once per service, at its first effect (bench/journeys.py, bench/knee_effects.py)."""

from __future__ import annotations

import importlib
import json
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch) -> dict[str, ModuleType]:
    monkeypatch.syspath_prepend(str(BENCH))  # the bench's modules import each other by bare name
    return {name: importlib.import_module(name) for name in ("journeys", "knee_effects", "knee_report")}


def test_a_transition_recomputed_by_a_later_merge_counts_at_its_first_appearance(bench):
    first_effects = bench["knee_effects"].first_effects
    posted = {"page-1": 100.0, "signup-1": 103.0}
    transitions = [("t-aware", ["bench/page-1"], 100.2),
                   ("t-aware-again", ["bench/page-1"], 103.4),  # the merge re-added the visitor's history
                   ("t-both", ["bench/page-1", "bench/signup-1"], 103.3)]  # counted for the cause POSTed last
    delays = first_effects(posted, transitions, {})
    assert delays["stage-engine"] == {"page-1": pytest.approx(0.2), "signup-1": pytest.approx(0.3)}


def test_messages_and_ledger_entries_find_their_touchpoint_through_the_transition_or_directly(bench):
    first_effects = bench["knee_effects"].first_effects
    posted = {"order-1": 10.0, "view-1": 11.0}
    transitions = [("t-purchase", ["bench/order-1"], 10.1)]
    caused = {"messaging": [("t-purchase", 10.5), ("bench/view-1", 11.25), ("someone-elses", 9.0)],
              "loyalty": [("bench/order-1", 10.2), ("t-purchase", 10.7)]}
    delays = first_effects(posted, transitions, caused)
    assert delays["messaging"] == {"order-1": pytest.approx(0.5), "view-1": pytest.approx(0.25)}
    assert delays["loyalty"] == {"order-1": pytest.approx(0.2)}  # its first entry, not the later bonus


def test_each_visitor_sends_its_journey_in_order_and_refunds_an_order_it_placed(bench):
    journeys = bench["journeys"]
    plan, mix = journeys.requests(400.0, 5.0, flush_s=0.005, gap_s=0.5, run="t")
    assert mix["events"] == 2000 and mix["events_per_request"] == 2
    assert [r.due_s for r in plan] == sorted(r.due_s for r in plan)
    sent = [event for request in plan for event in json.loads(request.body)["batch"]]
    assert len({e["messageId"] for e in sent}) == len(sent)
    by_person: dict[str, list[dict]] = defaultdict(list)
    aliases = {e["anonymousId"]: e["userId"] for e in sent if e.get("event") == "Signed Up"}
    for event in sent:
        person = event.get("userId") or event["anonymousId"]
        by_person[aliases.get(person, person)].append(event)
    journeys_by_steps = {steps for _, _, steps in journeys.JOURNEYS}
    for events in by_person.values():
        kinds = tuple(e.get("event") or e["type"] for e in events)
        assert any(steps[:len(kinds)] == kinds for steps in journeys_by_steps), kinds
        orders = [e["properties"]["order_id"] for e in events if e.get("event") == "Order Completed"]
        refunds = [e["properties"]["order_id"] for e in events if e.get("event") == "Order Refunded"]
        assert refunds in ([], orders)
    assert {"page", "Product Viewed", "Signed Up", "Order Completed"} <= set(mix["kinds"])


def test_cpu_per_event_is_what_each_process_spent_above_its_idle_use_per_accepted_event(bench):
    step = {"accepted_events_per_s": 500.0,
            "cpu_cores": {"ingest": 0.5, "messaging": 0.1, "broker": 0.05, "bench": 0.3, "not-ours": 0.9}}
    idle = {"messaging": 0.2, "broker": 0.03}
    per_event = bench["knee_report"].cpu_per_event_ms(step, idle)
    # ingest 0.5 cores / 500 events/s = 1 ms each; messaging below its idle use counts nothing; the load
    # generator and other load on the box are not the pipeline's
    assert per_event == pytest.approx({"ingest": 1.0, "broker": 0.04, "messaging": 0.0})
    assert list(per_event) == ["ingest", "broker", "messaging"]
    assert bench["knee_report"].cpu_per_event_ms({"accepted_events_per_s": 0, "cpu_cores": {}}, idle) == {}
