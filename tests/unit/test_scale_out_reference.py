"""The scale-out checker (tests/support/scale_out_reference.py): what it expects of each kind of customer,
that it sees a doubled or a missing row, and that it stays out of the services' code."""

from __future__ import annotations

import ast
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.support import scale_out_reference as reference

START = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_each_kind_of_customer_has_its_stages_messages_and_entries():
    stream = reference.stream("r", 6, START)
    want = reference.expected(stream.events)
    browser, considerer, buyer, repeat, refunder, advocate = (want[f"r-{n}"] for n in range(6))
    assert browser.stages == ["awareness"] and browser.templates == Counter({"welcome": 1})
    assert considerer.stages == ["awareness", "consideration"] and not considerer.entries
    assert buyer.stages[-1] == "purchase" and buyer.balance == 12  # floor(10 + 2)
    assert repeat.stages == ["awareness", "consideration", "purchase", "retention"]
    assert repeat.balance == 13 + 20  # floor(13), floor(13 + 7.5)
    assert refunder.stages == ["awareness", "consideration", "purchase", "retention", "purchase"]
    assert refunder.templates == Counter(welcome=1, consideration_nudge=1, thank_you_feedback=1, feedback_request=1,
                                         retention_offer=1)
    assert refunder.entries == Counter({("earn", "r-4-o0", 14): 1, ("earn", "r-4-o1", 21): 1,
                                        ("reverse", "r-4-o1", -21): 1})
    assert advocate.stages[-1] == "loyalty" and advocate.templates["referral_invite"] == 1
    assert advocate.balance == 15 + 22 + 500
    assert [refund["properties"]["order_id"] for refund in stream.refunds] == ["r-4-o1"]


def test_a_doubled_or_missing_row_is_a_difference():
    want = reference.expected(reference.stream("r", 6, START).events)
    got = reference.expected(reference.stream("r", 6, START).events)
    assert reference.differences(want, got) == {}
    got["r-3"].entries[("earn", "r-3-o0", 13)] += 1
    got["r-1"].stages.pop()
    got["r-5"].templates["welcome"] += 1
    assert set(reference.differences(want, got)) == {"r-1", "r-3", "r-5"}
    assert set(reference.differences(want, got)["r-3"]) == {"entries", "balance"}


def test_the_checker_does_not_use_the_services_code():
    source = Path(reference.__file__).read_text()
    imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert not [name for name in imported if name.startswith(("lifecycle", "services", "tests"))]
