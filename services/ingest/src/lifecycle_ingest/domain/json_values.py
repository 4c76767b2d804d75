"""JSON a storefront may send but nothing downstream could keep. Pure: no I/O.

Valid JSON can still be unstorable: PostgreSQL refuses NUL (U+0000) in text and JSONB, UTF-8
cannot encode a lone surrogate (`"\\ud800"`), NaN and Infinity (and 1e400, which parses as
Infinity) are not JSON numbers anywhere else, and very deep nesting exhausts recursion in every
serializer on the way. Ingest refuses such values with a 400 naming where they are, so an event
it accepts is one every consumer can apply.

`parse_checked` is the fast path for a body: orjson parses it, refusing by itself everything
unstorable but NUL and depth (it rejects NaN, Infinity, 1e400 and lone surrogates), so one scan of
the bytes for an escaped NUL and a walk over the containers tell whether any item needs its own
check. Anything unusual - orjson refusing the body, a NUL, an integer beyond 64 bits (orjson would
turn it into a float) - goes the exact way: `parse` with the standard parser and per-item checks.

`parse` reads a body. Where the standard parser runs out of recursion (a value nested about a
thousand levels deep), it parses the top-level object value by value and a `batch` array item by
item, and stands `TOO_DEEP` in for each value too deep to parse: the problem is then reported for
the one field or batch item at fault, and the others are kept. That path is linear in the body.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeAlias

import orjson

MAX_DEPTH = 32  # levels of objects and arrays in one event, the event itself being level 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACE = re.compile(r"[ \t\n\r]*")  # matches anywhere (perhaps empty): its match is never None
_QUOTE_OR_BRACKET = re.compile(r'["\[\]{}]')
_DECODER = json.JSONDecoder()


class UnparseableBody(ValueError):
    pass


class _TooDeep:
    def __repr__(self) -> str:
        return "TOO_DEEP"


TOO_DEEP = _TooDeep()  # stands in for a value nested too deeply to parse
# Where a value is: (the place of its container, its key there), the outermost container's place None.
_Place: TypeAlias = "tuple[_Place | None, str | int]"


BIG_FLOAT = 2.0**63  # at or above it, a float may be an integer orjson could not keep exactly


def parse_checked(body: bytes, *, max_depth: int) -> tuple[Any, bool]:
    """(value, storable): `storable` is True when nothing in the body needs checking (no NUL,
    nothing nested deeper than `max_depth` levels); False when each part must be checked."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return parse(body), False
    if b"\\u0000" in body:  # a NUL somewhere: check each part, on the exact parse (no float for a big int)
        return parse(body), False
    depth = _depth_if_exact(value, limit=max_depth)
    if depth is None or depth > max_depth:  # a float that may have been a big integer, or a part not
        return parse(body), False             # walked (too deep): parse exactly, check each part
    return value, True


def _depth_if_exact(value: Any, *, limit: int) -> int | None:
    """Levels of containers (up to limit + 1), or None if a float may hide a big integer."""
    deepest, level, current = 0, 0, [value]
    while current and deepest <= limit:
        level += 1
        deeper = []
        for item in current:
            if type(item) is dict or type(item) is list:
                deepest = level
                for child in item.values() if type(item) is dict else item:
                    kind = type(child)
                    if kind is dict or kind is list:
                        deeper.append(child)
                    elif kind is float and abs(child) >= BIG_FLOAT:
                        return None
        current = deeper
    return deepest


def parse(body: bytes) -> Any:
    """The JSON value of `body`; NaN and Infinity literals parse (and are then refused where they are)."""
    try:
        return json.loads(body)
    except RecursionError:
        pass
    except (ValueError, UnicodeDecodeError) as error:
        raise UnparseableBody(str(error)) from None
    try:
        return _ShallowParser(body.decode("utf-8-sig")).top_level_object()
    except (ValueError, UnicodeDecodeError) as error:
        raise UnparseableBody(f"malformed: {error}") from None


class _ShallowParser:
    """An object whose values are parsed one by one (a `batch` array item by item)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def top_level_object(self) -> dict[str, Any]:
        self._expect("{")
        found: dict[str, Any] = {}
        while self._peek() != "}":
            key = self._value()
            if not isinstance(key, str):
                raise ValueError(f"expected a string key at {self.pos}")
            self._expect(":")
            found[key] = self._items() if key == "batch" and self._peek() == "[" else self._value()
            self._comma_unless("}")
        space = _SPACE.match(self.text, self.pos + 1)
        assert space is not None
        end = space.end()
        if end != len(self.text):
            raise ValueError(f"extra data at {end}")
        return found

    def _items(self) -> list[Any]:
        self._expect("[")
        items: list[Any] = []
        while self._peek() != "]":
            items.append(self._value())
            self._comma_unless("]")
        self.pos += 1
        return items

    def _value(self) -> Any:
        self._peek()
        try:
            value, self.pos = _DECODER.raw_decode(self.text, self.pos)
        except RecursionError:
            end = _end_of_container(self.text, self.pos)
            if not _well_formed(self.text, self.pos, end):
                raise ValueError(f"malformed JSON in the value at {self.pos}") from None
            self.pos = end
            return TOO_DEEP
        return value

    def _peek(self) -> str:
        space = _SPACE.match(self.text, self.pos)
        assert space is not None
        self.pos = space.end()
        if self.pos >= len(self.text):
            raise ValueError("unexpected end of the body")
        return self.text[self.pos]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise ValueError(f"expected {char!r} at {self.pos}")
        self.pos += 1

    def _comma_unless(self, closing: str) -> None:
        """A comma between members, none before the closing bracket (JSON has no trailing commas)."""
        if self._peek() != closing:
            self._expect(",")
            if self._peek() == closing:
                raise ValueError(f"trailing comma at {self.pos}")


def _end_of_container(text: str, start: int) -> int:
    """Where the array or object at `start` ends: a bracket count that skips strings, in one pass
    (each character is looked at a bounded number of times, whatever the input)."""
    depth, pos = 0, start
    while match := _QUOTE_OR_BRACKET.search(text, pos):
        token, pos = match.group(), match.end()
        if token == '"':
            pos = _end_of_string(text, pos)
        elif token in "[{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos
    raise ValueError("unterminated array or object")


# One JSON token after optional whitespace: punctuation, a string, or a scalar (NaN and Infinity
# included, as the standard parser reads them; they are refused later, where they are).
_TOKEN = re.compile(r'[ \t\n\r]*(?:([\[\]{},:])|("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")'
                    r"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null|NaN|-?Infinity))")
_CLOSING = {"[": "]", "{": "}"}


def _well_formed(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is one JSON array or object, checked without recursion (a stack of
    open containers and what may come next), in one pass over its tokens."""
    stack: list[str] = []
    expect, pos = "value", start  # value | value_or_close | key | key_or_close | colon | after
    while pos < end:
        match = _TOKEN.match(text, pos, end)
        if match is None:
            return False
        pos = match.end()
        punct, string, scalar = match.groups()
        if expect in ("value", "value_or_close"):
            if punct in ("[", "{"):
                stack.append(punct)
                expect = "value_or_close" if punct == "[" else "key_or_close"
            elif punct == "]" and expect == "value_or_close":
                stack.pop()
                expect = "after"
            elif string or scalar:
                expect = "after"
            else:
                return False
        elif expect in ("key", "key_or_close"):
            if string:
                expect = "colon"
            elif punct == "}" and expect == "key_or_close":
                stack.pop()
                expect = "after"
            else:
                return False
        elif expect == "colon":
            if punct != ":":
                return False
            expect = "value"
        elif punct == "," and stack:
            expect = "value" if stack[-1] == "[" else "key"
        elif stack and punct == _CLOSING[stack[-1]]:
            stack.pop()
        else:
            return False
        if expect == "after" and not stack:
            space = _SPACE.match(text, pos, end)
            assert space is not None
            return space.end() == end
    return False


def _end_of_string(text: str, pos: int) -> int:
    """Just after the quote that closes the string whose content starts at `pos`."""
    while (quote := text.find('"', pos)) >= 0:
        backslashes = quote - len(text[pos:quote].rstrip("\\")) - pos
        if backslashes % 2 == 0:  # not escaped
            return quote + 1
        pos = quote + 1
    raise ValueError("unterminated string")


def unstorable(value: Any, *, max_depth: int = MAX_DEPTH, path: str = "") -> list[dict[str, str]]:
    """Where `value` holds something storage would refuse, as [{"field", "message"}] (at most 20)."""
    return [] if _storable(value, max_depth) else _problems(value, max_depth, path)


def _storable(value: Any, max_depth: int) -> bool:
    """The fast pass over every event: no paths, scalars checked where they are met."""
    stack: list[tuple[Any, int]] = [([value], 0)]  # wrapped, so a top-level scalar is checked like any other
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return False
        for key, child in (item.items() if type(item) is dict else enumerate(item)):
            if type(key) is str and ("\x00" in key or not key.isascii() and _SURROGATE.search(key)):
                return False
            kind = type(child)
            if kind is str:
                if "\x00" in child or not child.isascii() and _SURROGATE.search(child):
                    return False
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float and not math.isfinite(child) or child is TOO_DEEP:
                return False
    return True


def _problems(value: Any, max_depth: int, path: str) -> list[dict[str, str]]:
    """The slow pass, once something is wrong: every problem, with where it is. A child's place is
    kept as (parent place, key) and spelled out only for a problem, so memory stays linear."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[Any, _Place | None, int]] = [(value, (None, path) if path else None, 1)]
    while stack and len(problems) < 20:
        item, place, depth = stack.pop()
        if item is TOO_DEEP:
            problems.append({"field": _spell(place), "message": f"nested deeper than {max_depth} levels"})
        elif isinstance(item, dict | list):
            if depth > max_depth:
                problems.append({"field": _spell(place), "message": f"nested deeper than {max_depth} levels"})
                continue
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(key, str) and (text_problem := _text_problem(key)):
                    problems.append({"field": _spell((place, key)), "message": f"key {text_problem}"})
                stack.append((child, (place, key), depth + 1))
        elif isinstance(item, str):
            if text_problem := _text_problem(item):
                problems.append({"field": _spell(place), "message": text_problem})
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append({"field": _spell(place), "message": "not a finite number (NaN, Infinity or "
                                                                "beyond ±1.8e308)"})
    return problems


def storable_text(value: Any) -> bool:
    """A string storage takes as it is (no NUL, no lone surrogate), e.g. to echo it in an answer."""
    return isinstance(value, str) and _text_problem(value) is None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    if not text.isascii() and _SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate: not valid Unicode text"
    return None


def _spell(place: _Place | None) -> str:
    """'properties.items[2].name' from the chain of (parent place, key)."""
    keys: list[str | int] = []
    while place is not None:
        place, key = place
        keys.append(key)
    spelled = ""
    for key in reversed(keys):
        if isinstance(key, int):
            spelled += f"[{key}]"
        else:
            shown = json.dumps(key)[1:-1] if _text_problem(key) else key  # escapes NUL and surrogates
            spelled = f"{spelled}.{shown}" if spelled else shown
    return spelled or "(body)"
