"""The erasure scans (docs/erasure.md): every text, character, json, jsonb, array and bytea column of every table
of a database, and every record (key, value, headers) of every topic of a namespace - as it is on the broker and as
whoever holds the keys could open it - searched for each needle. Used before an erasure as the positive control and
after it."""

from __future__ import annotations

from typing import Any

from lifecycle_shared.events import CloudEvent
from lifecycle_shared.sealing import is_sealed, open_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.topics import lookup_keys

_COLUMNS = text(
    "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
    "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
    "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.data_type IN "
    "('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY', 'bytea', 'USER-DEFINED') "
    "ORDER BY 1, 2")


async def scan_database(engine: AsyncEngine, needles: list[str]) -> dict[str, list[str]]:
    """needle -> the `table.column`s holding it (case-insensitive), over the whole database; also the number of
    columns looked at under the key '' (so a scan that looked at nothing cannot pass for a clean one)."""
    found: dict[str, list[str]] = {needle: [] for needle in needles}
    async with engine.connect() as conn:
        columns = (await conn.execute(_COLUMNS)).all()
        for table, column, data_type in columns:
            value = (f"encode(\"{column}\", 'escape')" if data_type == "bytea"
                     else f"CAST(\"{column}\" AS text)")
            for needle in needles:
                hit = await conn.execute(text(f"SELECT 1 FROM \"{table}\" WHERE lower({value}) LIKE :pattern LIMIT 1"),
                                         {"pattern": f"%{needle.lower()}%"})
                if hit.first() is not None:
                    found[needle].append(f"{table}.{column}")
    found[""] = [f"{table}.{column}" for table, column, _ in columns]
    return found


def raw_hits(records: dict[str, list[Any]], needles: list[str]) -> dict[str, list[str]]:
    """needle -> the `topic@partition/offset`s whose key, value or headers hold it, bytes as on the broker."""
    found: dict[str, list[str]] = {needle: [] for needle in needles}
    for topic, topic_records in records.items():
        for record in topic_records:
            blob = b"\n".join([record.key or b"", record.value or b"",
                               *(name.encode() + b"=" + value for name, value in record.headers)]).lower()
            for needle in needles:
                if needle.lower().encode() in blob:
                    found[needle].append(f"{topic}@{record.partition}/{record.offset}")
    return found


async def opened_hits(records: dict[str, list[Any]], needles: list[str], *, keys_url: str,
                      pepper: str) -> tuple[dict[str, list[str]], int]:
    """What whoever holds the service token could read: each sealed record opened with its key from ingest's key
    API (the way a Lifecycle service opens it); needle -> where it is in the opened records, and how many opened."""
    sealed = [(topic, r, CloudEvent.model_validate_json(r.value)) for topic, rs in records.items() for r in rs
              if r.value and b'"sealed"' in r.value]
    sealed = [(topic, r, event) for topic, r, event in sealed if is_sealed(event)]
    keys = await lookup_keys({event.subject for _, _, event in sealed}, keys_url=keys_url, pepper=pepper)
    found: dict[str, list[str]] = {needle: [] for needle in needles}
    opened = 0
    for topic, record, event in sealed:
        if event.subject not in keys:
            continue
        clear = open_event(event, keys[event.subject]).to_bytes().lower()
        opened += 1
        for needle in needles:
            if needle.lower().encode() in clear:
                found[needle].append(f"{topic}@{record.partition}/{record.offset}")
    return found, opened
