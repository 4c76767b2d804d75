"""Which locale a customer's message is written in. Pure.

The customer's `locale` trait is a language tag as a shop or an SDK spells it: `vi-VN`, `vi_VN`,
`VI`, `th-TH`, `en-US`. It is tried as written and then less specific (`vi-vn`, then `vi`), then
the shop's default locale (the same way), then English - the first that the template has wins. A
trait that is no language tag (a number, a path, an empty string) is skipped, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Collection

FALLBACK = "en"  # every shipped template has it
_TAG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")


def normalised(tag: object) -> str | None:
    """`vi_VN` -> `vi-vn`; None if `tag` is not a language tag."""
    if not isinstance(tag, str):
        return None
    cleaned = tag.strip().replace("_", "-").lower()
    return cleaned if _TAG.fullmatch(cleaned) else None


def _less_specific(tag: str | None) -> list[str]:
    """`zh-hant-tw` -> [`zh-hant-tw`, `zh-hant`, `zh`]."""
    if tag is None:
        return []
    parts = tag.split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def locale_chain(trait: object, *, default: str = FALLBACK) -> list[str]:
    """The locales to try, in order: the trait's, the shop default's, English; no repeats."""
    chain = [*_less_specific(normalised(trait)), *_less_specific(normalised(default)), FALLBACK]
    return list(dict.fromkeys(chain))


def choose_locale(trait: object, *, available: Collection[str], default: str = FALLBACK) -> str | None:
    """The first locale of the chain that is `available` (normalised names), None if none is."""
    return next((tag for tag in locale_chain(trait, default=default) if tag in available), None)
