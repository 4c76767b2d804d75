"""How the consumer runner groups a batch's events into handler runs (lifecycle_shared.kafka.registry.runs_of):
every event once, each key's events in their order, never more runs than consecutive grouping made - and a mixed
batch of touchpoints in a few runs, not one per event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from lifecycle_shared.kafka.registry import runs_of


async def _h(conn, events):  # stand-ins: only identity matters to the grouping
    return []


async def _i(conn, events):
    return []


async def _j(conn, events):
    return []


HANDLERS = (_h, _i, _j)
batches = st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", b"d", None]), st.sampled_from(HANDLERS)), max_size=60)


def consecutive_runs(batch) -> int:
    return sum(1 for i, (_, handler) in enumerate(batch) if i == 0 or batch[i - 1][1] is not handler)


@given(batches)
def test_every_event_once_in_a_run_of_its_handler_and_each_keys_events_in_order(batch):
    events = [(key, handler, (index, key)) for index, (key, handler) in enumerate(batch)]
    runs = runs_of(events)
    applied = [(handler, event) for handler, run in runs for event in run]
    assert sorted([event for _, event in applied], key=repr) == sorted([event for _, _, event in events], key=repr)
    assert all(handler is batch[index][1] for handler, (index, _) in applied)
    for key in {key for key, _ in batch}:
        order = [index for _, (index, k) in applied if k == key]
        assert order == sorted(order)
    assert len(runs) <= consecutive_runs(batch) and all(run for _, run in runs)


def test_a_mixed_batch_of_many_customers_applies_in_one_run_per_handler():
    batch = [(f"customer-{n}".encode(), HANDLERS[n % 3], n) for n in range(30)]
    runs = runs_of(batch)
    assert [(handler, len(run)) for handler, run in runs] == [(_h, 10), (_i, 10), (_j, 10)]


def test_a_customers_later_event_waits_for_the_run_after_its_earlier_one():
    runs = runs_of([(b"a", _h, 1), (b"a", _i, 2), (b"a", _h, 3), (b"b", _h, 4)])
    assert runs == [(_h, [1]), (_i, [2]), (_h, [3, 4])]  # b has no earlier event: it joins the latest run
