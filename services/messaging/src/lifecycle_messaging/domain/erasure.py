"""The suppression marker of an erased address (docs/erasure.md): its keyed hash, so an address erased once is
never mailed again, whatever id it comes back under, without messaging keeping the address. Pure."""

from __future__ import annotations

from lifecycle_shared.erasure import id_hash

from lifecycle_messaging.domain.addresses import valid_address


def address_marker(pepper: bytes, address: str) -> str:
    """HMAC-SHA256 of the normalised, lowercased address under the erasure pepper (hex)."""
    return id_hash(pepper, (valid_address(address) or address.strip()).lower())
