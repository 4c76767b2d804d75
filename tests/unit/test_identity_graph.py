"""Identity resolution in one batch, as tables: which profile a touchpoint belongs to, and the links,
merges and key changes the graph records for the batch to write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lifecycle_shared.events import TouchpointData
from lifecycle_stage_engine.domain.identity import IdentityGraph, KeyMove
from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.rules import IdentityRules
from lifecycle_stage_engine.domain.timeline import State

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_IDS = IdentityRules()
EMAIL_IDS = IdentityRules(trait_ids=("email",))


def touchpoint(type: str = "track", *, user: str | None = None, anon: str | None = None,
               previous: str | None = None, **traits) -> TouchpointData:
    return TouchpointData(type=type, userId=user, anonymousId=anon, previousId=previous, messageId="m",
                          timestamp=T0, receivedAt=T0, traits=traits)


def profile(profile_id: str, *, user: str | None = None, anon: tuple[str, ...] = ()) -> Profile:
    return Profile(id=profile_id, customer_id=user or anon[0], user_id=user, state=State(), traits={},
                   first_seen_at=T0, last_seen_at=T0, anonymous_ids=list(anon))


def graph(*profiles: Profile, rules: IdentityRules = DEFAULT_IDS) -> IdentityGraph:
    """A graph over profiles as the batch loaded them: each owns its userId and anonymous ids."""
    owner = {}
    for loaded in profiles:
        owner |= {("anonymous", value): loaded.id for value in loaded.anonymous_ids}
        if loaded.user_id:
            owner[("user", loaded.user_id)] = loaded.id
    return IdentityGraph(profiles={p.id: p for p in profiles}, owner=owner, rules=rules)


def resolve(identities: IdentityGraph, *touchpoints: TouchpointData) -> list[str | None]:
    """The survivor profile id each touchpoint resolved to, in order (None: no usable id)."""
    found = [identities.resolve(tp, event_id=f"e{n}") for n, tp in enumerate(touchpoints)]
    return [None if p is None else identities.survivor(p.id) for p in found]


def test_an_anonymous_visitor_who_identifies_keeps_one_profile_under_the_new_key():
    identities = graph()
    first, second = resolve(identities, touchpoint("page", anon="a1"), touchpoint("identify", user="u1", anon="a1"))
    assert first == second and len(identities.created) == 1
    known = identities.profiles[first]
    assert (known.customer_id, known.user_id, known.anonymous_ids) == ("u1", "u1", ["a1"])
    assert identities.moves == [KeyMove(survivor=first, absorbed=None, absorbed_key="a1", absorbed_ids=("a1",),
                                        reason="identify", cause_event_id="e1", time=T0)]
    assert identities.merged_into == {}
    assert {(kind, value) for kind, value, _ in identities.links} == {("anonymous", "a1"), ("user", "u1")}


def test_an_identify_on_an_empty_graph_creates_the_profile_under_the_user_id_and_moves_the_anonymous_id_to_it():
    """Loyalty or messaging may hold state under the anonymous id already (they read the touchpoints
    themselves): the link is announced as a key move."""
    identities = graph()
    (found,) = resolve(identities, touchpoint("identify", user="u1", anon="a1"))
    assert identities.profiles[found].customer_id == "u1"
    assert [(m.absorbed, m.absorbed_key, m.absorbed_ids, m.reason) for m in identities.moves] == [
        (None, "a1", ("a1",), "link")]


def test_an_anonymous_only_profile_is_keyed_by_its_id_and_moves_nothing():
    identities = graph()
    resolve(identities, touchpoint("page", anon="a1"))
    assert identities.moves == []


@pytest.mark.parametrize("call", [touchpoint("identify", user="u1", anon="a1"),
                                  touchpoint("alias", user="u1", previous="a1")])
def test_an_anonymous_profile_is_merged_into_the_known_one(call):
    identities = graph(profile("U", user="u1"), profile("A", anon=("a1",)))
    assert resolve(identities, call) == ["U"]
    assert identities.merged_into == {"A": "U"}
    (move,) = identities.moves
    assert (move.survivor, move.absorbed, move.absorbed_key, move.absorbed_ids, move.reason) == (
        "U", "A", "a1", ("a1",), call.type)
    assert (identities.profiles["U"].anonymous_ids, identities.profiles["U"].merges) == (["a1"], 1)
    assert resolve(identities, touchpoint("page", anon="a1")) == ["U"]


def test_a_shared_device_never_joins_two_known_users():
    identities = graph(profile("A", user="uA", anon=("d1",)))
    (found,) = resolve(identities, touchpoint("identify", user="uB", anon="d1"))
    assert found != "A" and identities.profiles[found].user_id == "uB"
    assert (identities.merged_into, identities.moves) == ({}, [])
    assert identities.profiles["A"].user_id == "uA"
    assert resolve(identities, touchpoint("page", anon="d1"), touchpoint("page", user="uB")) == ["A", found]


@pytest.mark.parametrize("junk", ["null", "undefined", "0", "anonymous", " NULL ", "", "[object Object]"])
def test_junk_ids_are_no_ids(junk):
    identities = graph(profile("J", anon=("a1",)))
    assert resolve(identities, touchpoint("identify", user=junk, anon=junk)) == [None]
    assert resolve(identities, touchpoint("identify", user=junk, anon="a1")) == ["J"]
    assert (identities.created, identities.links, identities.moves) == ([], [], [])


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_linking_anonymous_ids_stops_at_the_cap(cap):
    identities = graph(rules=IdentityRules(max_anonymous_ids=cap))
    ids = resolve(identities, *(touchpoint("identify", user="u1", anon=f"a{n}") for n in range(5)))
    assert len(set(ids)) == 1
    assert identities.profiles[ids[0]].anonymous_ids == [f"a{n}" for n in range(cap)]
    (beyond,) = resolve(identities, touchpoint("page", anon="a4"))
    assert beyond != ids[0]


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_merging_stops_at_the_cap(cap):
    anonymous = [profile(f"A{n}", anon=(f"a{n}",)) for n in range(4)]
    identities = graph(profile("U", user="u1"), *anonymous, rules=IdentityRules(max_merges=cap))
    assert resolve(identities, *(touchpoint("identify", user="u1", anon=f"a{n}") for n in range(4))) == ["U"] * 4
    assert identities.merged_into == {f"A{n}": "U" for n in range(cap)}
    assert identities.profiles["U"].merges == cap


def test_the_merge_cap_counts_the_profiles_a_merged_profile_had_absorbed():
    rules = IdentityRules(max_merges=1)
    identities = graph(profile("U", user="u1"), profile("A", anon=("a",)), profile("B", anon=("b",)), rules=rules)
    resolve(identities, touchpoint("alias", anon="a", previous="b"),  # B into A: A has absorbed one
            touchpoint("identify", user="u1", anon="a"))  # A (carrying B) into U: two for U
    assert all(p.merges <= rules.max_merges for p in identities.profiles.values() if p.id not in
               identities.merged_into), {p.id: p.merges for p in identities.profiles.values()}


@pytest.mark.parametrize("call", [touchpoint("identify", user="c42"), touchpoint("track", user="c42", anon="c42")])
def test_a_user_id_first_seen_as_an_anonymous_id_resolves_to_that_profile(call):
    identities = graph(profile("P", anon=("c42",)))
    assert resolve(identities, call) == ["P"]
    assert (identities.profiles["P"].user_id, identities.profiles["P"].customer_id) == ("c42", "c42")
    assert (identities.created, identities.moves) == ([], [])


def test_an_anonymous_id_equal_to_a_known_user_id_resolves_to_that_user():
    identities = graph(profile("U", user="c42"))
    assert resolve(identities, touchpoint("page", anon="c42")) == ["U"]
    assert identities.created == []


def test_a_users_first_calls_in_one_batch_resolve_to_one_profile():
    identities = graph()
    assert len(set(resolve(identities, touchpoint("page", anon="c42"), touchpoint("identify", user="c42"),
                           touchpoint("page", anon="c42")))) == 1


@pytest.mark.parametrize("given_email", ["ann@example.com", "ANN@Example.COM", "  Ann@example.com "])
def test_an_anonymous_profile_giving_a_known_users_email_joins_them(given_email):
    identities = graph(profile("A", anon=("a9",)), rules=EMAIL_IDS)
    (known,) = resolve(identities, touchpoint("identify", user="u1", anon="d1", email="Ann@Example.com"))
    assert resolve(identities, touchpoint("track", anon="a9", email=given_email)) == [known]
    assert identities.merged_into == {"A": known}


def test_an_unknown_device_giving_a_known_users_email_joins_them():
    identities = graph(rules=EMAIL_IDS)
    (known,) = resolve(identities, touchpoint("identify", user="u1", email="ann@example.com"))
    assert resolve(identities, touchpoint("page", anon="new-device", email="ANN@example.com")) == [known]
    assert identities.profiles[known].anonymous_ids == ["new-device"]


def test_emails_are_no_ids_unless_the_rules_say_so():
    identities = graph()
    (known,) = resolve(identities, touchpoint("identify", user="u1", email="ann@example.com"))
    (other,) = resolve(identities, touchpoint("page", anon="a9", email="ann@example.com"))
    assert other != known


def test_two_known_users_with_the_same_email_are_never_merged():
    identities = graph(rules=EMAIL_IDS)
    first, second = resolve(identities, touchpoint("identify", user="u1", email="family@example.com"),
                            touchpoint("identify", user="u2", email="FAMILY@example.com"))
    assert first != second
    assert (identities.merged_into, identities.profiles[second].user_id) == ({}, "u2")


def test_a_chain_of_merges_in_one_batch_ends_at_one_survivor():
    identities = graph(profile("U", user="u"), profile("A", anon=("a",)), profile("B", anon=("b",)))
    resolve(identities, touchpoint("alias", anon="a", previous="b"), touchpoint("identify", user="u", anon="a"))
    assert identities.merged_into == {"B": "A", "A": "U"}
    assert [identities.survivor(p) for p in ("B", "A", "U")] == ["U", "U", "U"]
    assert identities.profiles["U"].anonymous_ids == ["a", "b"]
    assert resolve(identities, touchpoint("page", anon="b")) == ["U"]
    assert [(m.survivor, m.absorbed) for m in identities.moves] == [("A", "B"), ("U", "A")]


@pytest.mark.parametrize(("call", "rules"), [
    (touchpoint("alias", anon="d1", previous="d2"), DEFAULT_IDS),
    (touchpoint("page", anon="d1", email="b@example.com"), EMAIL_IDS),
], ids=["alias-of-two-users-devices", "device-of-one-user-email-of-another"])
def test_ids_of_two_known_users_resolve_repeatably_and_never_repeat_a_customer_key(call, rules):
    identities = graph(profile("A", user="uA", anon=("d1",)), profile("B", user="uB", anon=("d2",)), rules=rules)
    identities.owner[("email", "b@example.com")] = "B"
    first, second = resolve(identities, call, call)
    assert first == second
    assert identities.merged_into == {}
    customer_keys = [p.customer_id for p in identities.profiles.values()]
    assert len(customer_keys) == len(set(customer_keys)), customer_keys
