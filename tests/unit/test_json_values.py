"""json/jsonb values read from the database (`db.json_value`, the engine's decoder) are exactly what `json.loads`
gives - same types, same values, same key order - though orjson decodes most of them."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from lifecycle_shared.db import json_value

from tests.support.json_values import same

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2 ** 63 - 2, max_value=2 ** 64 + 2)
           | st.integers(min_value=-(2 ** 63) - 2, max_value=-(2 ** 63) + 2) | st.floats() | st.text())
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)
# Numbers as PostgreSQL may print them (jsonb keeps a numeric's digits): any length of mantissa, any exponent.
NUMBERS = st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)


@settings(max_examples=500, deadline=None)
@given(value=VALUES, ascii_only=st.booleans())
def test_any_json_document_decodes_as_the_standard_library_decodes_it(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert same(json_value(text), json.loads(text))


@settings(max_examples=1000, deadline=None)
@given(numbers=st.lists(NUMBERS, min_size=1, max_size=5))
def test_numbers_of_any_length_and_exponent_decode_as_the_standard_library_decodes_them(numbers):
    text = "[" + ", ".join(numbers) + "]"
    assert same(json_value(text), json.loads(text))


def test_the_edges():
    for text in ['{"quantity": 18446744073709551616}', '[18446744073709551615, -9223372036854775808]',
                 '[-9223372036854775809]', '[1e400, -1e400, 1e-400]', '["\\ud800"]', '{"a": 1, "a": 2}',
                 '[-0, -0.0, 0.1, 1E2]', '"12345678901234567890"',
                 '["\ud800"]', '[' * 100 + ']' * 100]:
        assert same(json_value(text), json.loads(text)), text
