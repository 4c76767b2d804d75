"""Opening sealed records before they are routed (docs/erasure.md, crypto-shredding; `lifecycle_shared.sealing`).

The consumer runner decodes a batch, keeps what its routes want, and hands it here: clear events pass as they are,
sealed ones are opened with their keys (fetched for the whole batch at once). A sealed event whose key is gone was
erased: it is dropped (counted, never dead-lettered - nobody may read it again). One that does not open under its
key is refused on its own (PermanentError, the DLQ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from lifecycle_shared.errors import PermanentError
from lifecycle_shared.events import CloudEvent
from lifecycle_shared.keyring import Keyring, KeysUnavailable
from lifecycle_shared.sealing import is_sealed, key_id_of, open_event

Item = TypeVar("Item")


@dataclass
class Opened(Generic[Item]):
    """A batch after opening, in order: `ready` (clear or opened), `erased` (keys destroyed) and `refused`."""

    ready: list[tuple[Item, CloudEvent]] = field(default_factory=list)
    erased: list[tuple[Item, CloudEvent]] = field(default_factory=list)
    refused: list[tuple[Item, PermanentError]] = field(default_factory=list)


async def open_all(items: list[tuple[Item, CloudEvent]], keyring: Keyring | None) -> Opened[Item]:
    """Every event of the batch opened; KeysUnavailable when sealed events are there and their keys cannot be
    asked for now (no key store configured, or it is unreachable): the batch waits, nothing is dropped."""
    key_ids = {key_id_of(event) for _, event in items if is_sealed(event)}
    if key_ids and keyring is None:
        raise KeysUnavailable("sealed records, and no key store to open them (set LIFECYCLE_KEYS_URL and "
                              "LIFECYCLE_ERASURE_PEPPER)")
    keys = await keyring.keys_of(key_ids) if key_ids and keyring is not None else {}
    opened: Opened[Item] = Opened()
    for item, event in items:
        if not is_sealed(event):
            opened.ready.append((item, event))
            continue
        key = keys.get(key_id_of(event))
        if key is None:
            opened.erased.append((item, event))
            continue
        try:
            opened.ready.append((item, open_event(event, key)))
        except PermanentError as error:
            opened.refused.append((item, error))
    return opened
