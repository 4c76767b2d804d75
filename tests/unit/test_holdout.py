"""Holdout assignment per (campaign, person): deterministic, the configured share, independent across
campaigns. Margins come from the binomial distribution (99.9% intervals), so a correct implementation
is far from failing and a biased or correlated one (a share off by a point, a hash reused across
campaigns) is far from passing."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_messaging.domain.holdout import DEFAULT_SHARE, assign, draw, held_out
from scipy import stats

PEOPLE = 20_000
# Person keys of the shapes a shop has: sequential ids (close in every bit but the last), emails, UUID-like.
KEY_SHAPES = {
    "sequential": [f"cust_{i}" for i in range(PEOPLE)],
    "emails": [f"buyer{i}@shop{i % 7}.vn" for i in range(PEOPLE)],
    "hex": [f"{i * 2654435761 % 2**64:016x}" for i in range(PEOPLE)],
}


def test_the_draw_is_the_same_on_every_machine_and_in_every_process():
    # Golden values: SHA-256 is fixed by its standard, so these never change unless the encoding does
    # (which would reshuffle every running campaign's groups).
    assert draw("winback-lapsed", "cust_1") == 0.4787893851434838
    assert draw("winback-lapsed", "cust_2") == 0.13034054893711267
    assert draw("cart-reminder", "cust_1") == 0.20325201487696398
    assert draw("cart-reminder", "nguyễn.văn.an@ví-dụ.vn") == 0.8876351527544616


@pytest.mark.parametrize(("campaign", "person"), [("winback-lapsed", "cust_1"), ("c", "nguyễn.văn.an@ví-dụ.vn")])
def test_the_draw_follows_its_documented_recipe(campaign, person):
    """The recipe as another implementation (SQL, a script) would follow it: SHA-256 of the salt, then
    campaign and person each as a 4-byte big-endian UTF-8 length and the UTF-8 bytes; the digest's first
    53 bits over 2**53."""
    def field(text: str) -> bytes:
        return len(text.encode()).to_bytes(4, "big") + text.encode()
    hexdigest = hashlib.sha256(b"lifecycle-holdout\x00" + field(campaign) + field(person)).hexdigest()
    assert draw(campaign, person) == (int(hexdigest[:16], 16) >> 11) / 2**53


def test_campaign_and_person_are_kept_apart_in_the_hash():
    assert draw("ab", "c") != draw("a", "bc")
    assert draw("", "abc") != draw("abc", "")


@given(campaign=st.text(), person=st.text(), share=st.floats(0.0, 1.0))
def test_the_draw_is_in_the_unit_interval_and_the_group_follows_it(campaign, person, share):
    u = draw(campaign, person)
    assert 0.0 <= u < 1.0
    assert held_out(campaign, person, share) == (u < share)
    assert assign(campaign, person, share) == ("holdout" if u < share else "treatment")


@given(campaign=st.text(), person=st.text())
def test_share_0_holds_nobody_and_share_1_holds_everyone(campaign, person):
    assert assign(campaign, person, 0.0) == "treatment"
    assert assign(campaign, person, 1.0) == "holdout"


@given(campaign=st.text(), person=st.text(), shares=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2))
def test_a_larger_share_only_adds_people_to_the_holdout(campaign, person, shares):
    smaller, larger = sorted(shares)
    assert held_out(campaign, person, larger) or not held_out(campaign, person, smaller)


@pytest.mark.parametrize("share", [-0.1, 1.0001, math.nan, math.inf])
def test_a_share_outside_0_to_1_is_refused(share):
    with pytest.raises(ValueError, match="holdout share"):
        assign("c", "p", share)


@pytest.mark.parametrize("shape", sorted(KEY_SHAPES))
@pytest.mark.parametrize("share", [0.01, DEFAULT_SHARE, 0.25, 0.5, 0.9])
def test_the_realised_share_is_the_configured_one(shape, share):
    held = sum(held_out("welcome-awareness", person, share) for person in KEY_SHAPES[shape])
    low, high = stats.binom.interval(0.999, PEOPLE, share)
    assert low <= held <= high, f"{held} of {PEOPLE} held at share {share}: outside [{low}, {high}]"


@pytest.mark.parametrize("shape", sorted(KEY_SHAPES))
def test_the_draws_are_uniform(shape):
    draws = [draw("thank-you-first-order", person) for person in KEY_SHAPES[shape]]
    assert stats.kstest(draws, "uniform").pvalue > 0.001


@pytest.mark.parametrize(("first", "second"), [
    ("campaign-1", "campaign-2"),  # ids one character apart
    ("winback-lapsed", "winback-lapsed "),
    ("cart-reminder", "referral-advocates"),
])
def test_assignment_is_independent_across_campaigns(first, second):
    share = 0.3  # larger than the default: more people in both holdouts, a sharper test
    people = KEY_SHAPES["sequential"]
    a = [held_out(first, person, share) for person in people]
    b = [held_out(second, person, share) for person in people]
    both = sum(x and y for x, y in zip(a, b, strict=True))
    table = [[both, sum(a) - both], [sum(b) - both, PEOPLE - sum(a) - sum(b) + both]]
    # Independent groups: the 2x2 table passes a chi-square test of independence, and the correlation
    # of the two indicators is within 3.29 standard errors (1/sqrt(n) under independence) of zero.
    assert stats.chi2_contingency(table, correction=False).pvalue > 0.001
    correlation = stats.pearsonr([float(x) for x in a], [float(y) for y in b]).statistic
    assert abs(correlation) < stats.norm.ppf(0.9995) / math.sqrt(PEOPLE)
    # Being held out of one campaign says nothing about the other: P(both) = share^2 within its margin.
    low, high = stats.binom.interval(0.999, PEOPLE, share * share)
    assert low <= both <= high
