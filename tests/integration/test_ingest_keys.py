"""Ingest's keys and sources against a real PostgreSQL: two kinds of keys stored only as hashes,
rotation with overlap, revocation seen by every instance within seconds, origin allowlists, the
admin API's answers, and the CLI (the migration of existing keys: test_migrations; origin rules: unit/test_origins)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_devstack.faults import StallingProxy
from lifecycle_devstack.services import BY_NAME, run_module
from lifecycle_ingest.keys import ApiKey, KeyStore
from lifecycle_ingest.main import create_app
from lifecycle_ingest.settings import IngestSettings
from lifecycle_shared.db import create_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.support.in_process import kafka_settings, running

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def namespace(infra):
    """Only ingest's database (and the topics): nothing else runs here."""
    config = infra.stack_config()
    infra.prepare(config, services=[BY_NAME["ingest"]])
    return config


def settings_for(namespace, **overrides) -> IngestSettings:
    return IngestSettings(**{"database_url": namespace.database_url(BY_NAME["ingest"]),
                             "kafka": kafka_settings(namespace), "admin_token": ADMIN_TOKEN, **overrides})


@pytest.fixture(scope="module")
async def admin(namespace):
    app = create_app(settings_for(namespace))
    async with running(app) as client:
        client.headers.update(ADMIN)
        client.app = app  # to reach its key store
        yield client


@pytest.fixture(scope="module")
async def engine(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["ingest"]))
    yield engine
    await engine.dispose()


class Clock:
    """The real time, moved on by `offset`: expiry is tested without waiting for it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
async def store(engine):
    clock = Clock()
    store = KeyStore(engine=engine, refresh_s=0.1, clock=clock)
    await store.start()
    store.clock = clock
    yield store
    await store.stop()


async def new_key(admin, source: str, kind: str | None = None) -> dict:
    response = await admin.post("/v1/admin/keys", json={"source": source, **({"kind": kind} if kind else {})})
    assert response.status_code == 201, response.text
    return response.json()


async def known(store: KeyStore, key: str, *, timeout_s: float = 5) -> ApiKey:
    """Poll until `store` knows `key` (its next refresh), with a deadline."""
    deadline = time.monotonic() + timeout_s
    while (found := store.lookup(key)) is None:
        assert time.monotonic() < deadline, "the key store never loaded the new key"
        await asyncio.sleep(0.05)
    return found


async def refused(store: KeyStore, key: str, *, timeout_s: float) -> float:
    """Poll until `store` refuses `key`; how long that took."""
    started = time.monotonic()
    while store.lookup(key) is not None:
        assert time.monotonic() - started < timeout_s, f"key still accepted after {timeout_s}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# Kinds, prefixes, hashes

async def test_each_kind_has_its_prefix_and_256_random_bits(admin):
    write, server = await new_key(admin, "kinds"), await new_key(admin, "kinds", "server")
    assert set(write) == {"key_id", "source", "kind", "key", "prefix", "created_at"}
    assert (write["kind"], server["kind"]) == ("write", "server")
    assert write["key"].startswith("lc_wk_") and server["key"].startswith("lc_sk_")
    for created in (write, server):
        assert created["source"] == "kinds" and created["prefix"] == created["key"][:10]
        assert len(created["key"]) - len("lc_wk_") >= 32  # base64url: 6 bits a character, 192+ bits


async def test_only_the_hash_of_a_key_is_stored(admin, engine):
    created = await new_key(admin, "hashed", "server")
    async with engine.connect() as conn:
        rows = [row[0] for table in ("api_keys", "sources", "key_generation")
                for row in await conn.execute(text(f"SELECT row_to_json(t)::text FROM {table} t"))]
        stored_hash = (await conn.execute(text("SELECT key_hash FROM api_keys WHERE id = :id"),
                                          {"id": created["key_id"]})).scalar_one()
    everything = "\n".join(rows)
    secret_part = created["key"][len("lc_sk_"):]
    assert stored_hash == hashlib.sha256(created["key"].encode()).hexdigest()
    assert secret_part[:12] not in everything and secret_part[-12:] not in everything
    listed = await admin.get("/v1/admin/keys", params={"source": "hashed"})
    assert listed.status_code == 200 and secret_part[-12:] not in listed.text
    assert listed.json() == [{"key_id": created["key_id"], "source": "hashed", "kind": "server",
                              "prefix": created["key"][:10], "created_at": created["created_at"],
                              "expires_at": None, "revoked_at": None}]


async def test_the_store_answers_from_memory_what_each_key_is(admin, store):
    write, server = await new_key(admin, "memory"), await new_key(admin, "memory", "server")
    assert await known(store, write["key"]) == ApiKey(key_id=write["key_id"], source="memory", kind="write",
                                                      allowed_origins=frozenset(), expires_at=None)
    assert (await known(store, server["key"])).kind == "server"
    assert store.loaded
    for stranger in ("lc_wk_" + secrets.token_urlsafe(32), "lc_sk_" + secrets.token_urlsafe(32), "", "nope",
                     write["key"] + "x", write["key"][:-1], "lc_wk_" + "a" * 100_000, write["key"].upper()):
        assert store.lookup(stranger) is None


async def test_the_instance_that_makes_a_change_applies_it_at_once(admin):
    keys: KeyStore = admin.app.state.keys  # polls only every second (the default)
    created = await new_key(admin, "at-once")
    assert keys.lookup(created["key"]) is not None
    rotated = (await admin.post(f"/v1/admin/keys/{created['key_id']}/rotate", json={"overlap_s": 0})).json()
    assert keys.lookup(created["key"]) is None and keys.lookup(rotated["key"]) is not None
    await admin.put("/v1/admin/sources/at-once", json={"allowed_origins": ["https://at-once.example"]})
    assert keys.lookup(rotated["key"]).allowed_origins == {"https://at-once.example"}
    assert (await admin.delete(f"/v1/admin/keys/{rotated['key_id']}")).status_code == 204
    assert keys.lookup(rotated["key"]) is None


# Rotation

async def test_rotation_keeps_both_keys_for_the_overlap_then_only_the_new_one(admin, store):
    old = await new_key(admin, "rotating", "server")
    await known(store, old["key"])
    response = await admin.post(f"/v1/admin/keys/{old['key_id']}/rotate", json={"overlap_s": 3600})
    assert response.status_code == 201, response.text
    new = response.json()
    assert set(new) == {"key_id", "source", "kind", "key", "prefix", "created_at", "previous_expires_at"}
    assert (new["source"], new["kind"]) == ("rotating", "server") and new["key"].startswith("lc_sk_")
    previous_expires_at = datetime.fromisoformat(new["previous_expires_at"])
    assert abs(previous_expires_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)

    await known(store, new["key"])
    assert store.lookup(old["key"]).expires_at == previous_expires_at  # reloaded with its expiry
    store.clock.offset = previous_expires_at - datetime.now(UTC) - timedelta(seconds=5)
    assert store.lookup(old["key"]) is not None and store.lookup(new["key"]) is not None
    store.clock.offset = previous_expires_at - datetime.now(UTC) + timedelta(seconds=1)
    assert store.lookup(old["key"]) is None and store.lookup(new["key"]) is not None


async def test_rotation_without_overlap_ends_the_old_key_at_once(admin, store):
    old = await new_key(admin, "rotating-now")
    await known(store, old["key"])
    new = (await admin.post(f"/v1/admin/keys/{old['key_id']}/rotate", json={"overlap_s": 0})).json()
    assert new["kind"] == "write"
    await known(store, new["key"])
    assert store.lookup(old["key"]) is None
    listed = {k["key_id"]: k for k in (await admin.get("/v1/admin/keys", params={"source": "rotating-now"})).json()}
    assert listed[old["key_id"]]["expires_at"] == new["previous_expires_at"]
    assert listed[new["key_id"]]["expires_at"] is None
    # An expired key is no longer live: it can be neither rotated nor revoked.
    assert (await admin.post(f"/v1/admin/keys/{old['key_id']}/rotate", json={})).status_code == 404
    assert (await admin.delete(f"/v1/admin/keys/{old['key_id']}")).status_code == 404


async def test_rotation_takes_the_default_overlap_without_a_body(admin):
    old = await new_key(admin, "rotating-default")
    new = (await admin.post(f"/v1/admin/keys/{old['key_id']}/rotate")).json()
    expected = datetime.now(UTC) + timedelta(seconds=86400)
    assert abs(datetime.fromisoformat(new["previous_expires_at"]) - expected) < timedelta(minutes=1)


# Revocation across instances

async def test_a_key_revoked_on_one_instance_is_refused_by_another_within_seconds(admin, namespace):
    settings = settings_for(namespace, admin_token=None, environment="development")  # default key_refresh_s
    app_b = create_app(settings)
    async with running(app_b) as other:
        instance_b: KeyStore = app_b.state.keys
        created = await new_key(admin, "revoked-everywhere", "server")
        await known(instance_b, created["key"])
        assert instance_b.lookup(created["key"]) is not None  # accepted just before the revocation
        assert (await admin.delete(f"/v1/admin/keys/{created['key_id']}")).status_code == 204
        assert admin.app.state.keys.lookup(created["key"]) is None  # at once where it was revoked
        took = await refused(instance_b, created["key"], timeout_s=5)
        assert took < settings.key_refresh_s + 2
        # This instance has no admin token: its admin API is off.
        assert (await other.get("/v1/admin/keys")).status_code == 403


async def test_a_store_that_loses_its_database_keeps_its_keys_and_catches_up_when_it_is_back(admin, namespace):
    kept, revoked = await new_key(admin, "offline"), await new_key(admin, "offline")
    url = make_url(namespace.database_url(BY_NAME["ingest"]))
    proxy = StallingProxy(target_port=url.port)
    await proxy.start()
    engine = create_engine(url.set(port=proxy.port).render_as_string(hide_password=False))
    store = KeyStore(engine=engine, refresh_s=0.05)
    try:
        await store.start()
        await proxy.stop()  # the database is unreachable: every refresh fails
        await asyncio.sleep(0.5)
        assert store.loaded and store.lookup(kept["key"]) and store.lookup(revoked["key"])
        assert (await admin.delete(f"/v1/admin/keys/{revoked['key_id']}")).status_code == 204
        proxy = StallingProxy(target_port=url.port, port=proxy.port)
        await proxy.start()  # back: the next poll loads the revocation
        await refused(store, revoked["key"], timeout_s=5)
        assert store.lookup(kept["key"]) is not None
    finally:
        await store.stop()
        await engine.dispose()
        await proxy.stop()


# Sources and their origins

async def test_a_source_lists_its_origins_normalised_and_keys_carry_them(admin, store):
    created = await new_key(admin, "browser-shop")
    response = await admin.put("/v1/admin/sources/browser-shop", json={
        "allowed_origins": ["HTTPS://Shop.Example.com:443", "http://127.0.0.1:5173", "https://shop.example.com"]})
    assert response.status_code == 200, response.text
    origins = ["https://shop.example.com", "http://127.0.0.1:5173"]
    shown = {"source": "browser-shop", "allowed_origins": origins, "identity_verification": False}
    assert response.json() == shown
    listed = (await admin.get("/v1/admin/sources")).json()
    assert shown in listed

    async def with_origins():
        api_key = store.lookup(created["key"])
        return api_key if api_key and api_key.allowed_origins else None

    deadline = time.monotonic() + 5
    while not await with_origins():
        assert time.monotonic() < deadline, "the key store never saw the new origins"
        await asyncio.sleep(0.05)
    assert store.lookup(created["key"]).allowed_origins == frozenset(origins)
    assert store.origin_allowed_anywhere("https://shop.example.com")
    assert not store.origin_allowed_anywhere("https://evil.example.com")
    assert not store.origin_allowed_anywhere("https://shop.example.com/")


async def test_putting_origins_creates_the_source_and_replaces_the_list(admin):
    name = f"new-{uuid.uuid4().hex[:6]}"
    assert (await admin.put(f"/v1/admin/sources/{name}", json={"allowed_origins": ["https://a.example"]})
            ).json() == {"source": name, "allowed_origins": ["https://a.example"], "identity_verification": False}
    assert (await admin.put(f"/v1/admin/sources/{name}", json={"allowed_origins": []})
            ).json() == {"source": name, "allowed_origins": [], "identity_verification": False}


async def test_a_bad_origin_is_a_400_naming_it(admin):
    response = await admin.put("/v1/admin/sources/bad-origins",
                               json={"allowed_origins": ["https://ok.example", "https://*.example.com"]})
    assert response.status_code == 400
    assert "allowed_origins[1]" in response.text and "https://*.example.com" in response.text
    assert "wildcard" in response.text


# The admin API's answers

async def test_the_admin_api_needs_the_admin_token(admin):
    for headers in ({"authorization": "Bearer wrong"}, {"authorization": ""}):
        assert (await admin.post("/v1/admin/keys", json={"source": "x"}, headers=headers)).status_code == 401
        assert (await admin.get("/v1/admin/sources", headers=headers)).status_code == 401


async def test_unknown_or_revoked_keys_are_404(admin):
    unknown = uuid.uuid4()
    assert (await admin.post(f"/v1/admin/keys/{unknown}/rotate", json={})).status_code == 404
    assert (await admin.delete(f"/v1/admin/keys/{unknown}")).status_code == 404
    created = await new_key(admin, "revoked-twice")
    assert (await admin.delete(f"/v1/admin/keys/{created['key_id']}")).status_code == 204
    assert (await admin.delete(f"/v1/admin/keys/{created['key_id']}")).status_code == 404
    assert (await admin.post(f"/v1/admin/keys/{created['key_id']}/rotate", json={})).status_code == 404
    [listed] = (await admin.get("/v1/admin/keys", params={"source": "revoked-twice"})).json()
    assert listed["revoked_at"] is not None


@pytest.mark.parametrize("body", [
    {"source": "x", "kind": "admin"},
    {"source": "a/b"},
    {"source": "x", "key": "lc_wk_chosen"},
])
async def test_an_invalid_key_request_is_a_400(admin, body):
    assert (await admin.post("/v1/admin/keys", json=body)).status_code == 400


@pytest.mark.parametrize("overlap_s", [-1, 10**9, "soon"])
async def test_an_invalid_overlap_is_a_400(admin, overlap_s):
    created = await new_key(admin, "bad-overlap")
    response = await admin.post(f"/v1/admin/keys/{created['key_id']}/rotate", json={"overlap_s": overlap_s})
    assert response.status_code == 400


async def test_admin_bodies_over_64_kb_are_413_declared_or_streamed(admin):
    big = b'{"allowed_origins": ["https://a.example"], "pad": "' + b"x" * 70_000 + b'"}'

    async def streamed():
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    for content in (big, streamed()):
        response = await admin.put("/v1/admin/sources/big", content=content,
                                   headers={"content-type": "application/json"})
        assert response.status_code == 413, response.text
    assert (await admin.post("/v1/admin/keys", content=big, headers={"content-type": "application/json"})
            ).status_code == 413


def test_the_openapi_document_names_every_admin_answer(namespace):
    paths = create_app(settings_for(namespace)).openapi()["paths"]
    assert set(paths["/v1/admin/keys"]["post"]["responses"]) >= {"201", "400", "401", "403", "413"}
    assert set(paths["/v1/admin/keys/{key_id}/rotate"]["post"]["responses"]) >= {"201", "400", "401", "403", "404"}
    assert set(paths["/v1/admin/keys/{key_id}"]["delete"]["responses"]) >= {"204", "401", "403", "404"}
    assert set(paths["/v1/admin/sources/{name}"]["put"]["responses"]) >= {"200", "400", "401", "403", "413"}


# The command line

def test_the_command_line_creates_both_kinds_and_sets_origins(namespace):
    ingest = BY_NAME["ingest"]
    assert run_module(ingest, namespace, "create-key", "cli-shop").strip().startswith("lc_wk_")
    assert run_module(ingest, namespace, "create-key", "cli-shop", "--server").strip().startswith("lc_sk_")
    printed = run_module(ingest, namespace, "set-origins", "cli-shop", "HTTPS://Shop.Example.com:443",
                         "http://localhost:5173")
    assert printed.split() == ["https://shop.example.com", "http://localhost:5173"]
    with pytest.raises(RuntimeError, match="trailing slash"):
        run_module(ingest, namespace, "set-origins", "cli-shop", "https://shop.example.com/")


# Identity-verification secrets

async def test_an_identity_secret_is_shown_once_replaced_on_rotation_and_reaches_every_key_store(admin, store):
    created = await new_key(admin, "verified-shop")
    first = await admin.post("/v1/admin/sources/verified-shop/identity-secret")
    assert first.status_code == 201, first.text
    secret = first.json()["identity_secret"]
    assert secret.startswith("lc_iv_") and len(secret) > 40
    assert {"source": "verified-shop", "allowed_origins": [], "identity_verification": True} in (
        await admin.get("/v1/admin/sources")).json()

    async def holds(expected: str | None) -> None:
        deadline = time.monotonic() + 5
        while (api_key := store.lookup(created["key"])) is None or api_key.identity_secret != expected:
            assert time.monotonic() < deadline, "the key store never saw the identity secret"
            await asyncio.sleep(0.05)

    await holds(secret)
    rotated = (await admin.post("/v1/admin/sources/verified-shop/identity-secret")).json()["identity_secret"]
    assert rotated != secret
    await holds(rotated)
    assert (await admin.delete("/v1/admin/sources/verified-shop/identity-secret")).status_code == 204
    await holds(None)
    assert (await admin.delete("/v1/admin/sources/verified-shop/identity-secret")).status_code == 404
    no_token = await admin.post("/v1/admin/sources/verified-shop/identity-secret", headers={"authorization": ""})
    assert no_token.status_code == 401
