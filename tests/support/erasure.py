"""The erasure scan (docs/erasure.md): every text, character, json, jsonb, array and bytea column of every table
of a database, searched for each needle. Used before an erasure as the positive control and after it."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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
            value = (f"convert_from(\"{column}\", 'SQL_ASCII')" if data_type == "bytea"
                     else f"CAST(\"{column}\" AS text)")
            for needle in needles:
                hit = await conn.execute(text(f"SELECT 1 FROM \"{table}\" WHERE lower({value}) LIKE :pattern LIMIT 1"),
                                         {"pattern": f"%{needle.lower()}%"})
                if hit.first() is not None:
                    found[needle].append(f"{table}.{column}")
    found[""] = [f"{table}.{column}" for table, column, _ in columns]
    return found
