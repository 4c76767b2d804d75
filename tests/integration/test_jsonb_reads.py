"""jsonb read through the engine (`db.json_value` decodes it) is what the standard library makes of the text
PostgreSQL prints for it: integers beyond 64 bits, numbers beyond a double, long mantissas, escapes."""

from __future__ import annotations

import json

from lifecycle_devstack.services import BY_NAME
from lifecycle_shared.db import create_engine
from sqlalchemy import text

from tests.support.json_values import same

DOCUMENTS = ['{"quantity": 18446744073709551616, "n": 18446744073709551615, "m": -9223372036854775809}',
             '{"big": 123456789012345678901234567890, "e": 1e400, "tiny": 1e-400, "long": 0.1000000000000000055511151}',
             '{"revenue": 12.50, "zero": -0.0, "int": -0, "exp": 1E2, "t": true, "f": false, "none": null}',
             '{"s": "quote \\" backslash \\\\ tab \\t nul-free \\u00e9 \\ud83d\\ude00 \\u2028", "k\\u00e9y": [[], {}]}',
             '{"order_id": "12345678901234567890", "nested": {"a": [1, 2.5, {"b": "c"}]}}']


async def test_jsonb_reads_as_the_standard_library_reads_postgresqls_text(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    try:
        async with engine.connect() as conn:
            for document in DOCUMENTS:
                row = (await conn.execute(text("SELECT CAST(:d AS jsonb) AS value, CAST(:d AS jsonb)::text AS printed"),
                                          {"d": document})).one()
                assert same(row.value, json.loads(row.printed)), row.printed
    finally:
        await engine.dispose()
