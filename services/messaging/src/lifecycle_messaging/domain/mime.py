"""How a rendered message becomes MIME: whom it says it is from, how its parts are encoded. Pure.

The From address is the shop's (`smtp_from`); its display name is the rendered template's (the
brand, in the customer's language). Python's email package writes a non-ASCII subject or name as
RFC 2047 encoded words - or as UTF-8 when the message goes out with SMTPUTF8, which aiosmtplib
uses only when an address needs it. A body part that is not ASCII (Vietnamese, Thai) is base64:
its bytes reach the reader exactly, whether or not a server on the way takes 8-bit data, and no
relay rewrites its line ends. An ASCII part stays readable as 7bit.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import parseaddr

from lifecycle_messaging.domain.addresses import header_safe


def sender(configured: str, *, display_name: str) -> str | Address:
    """`configured` ("Shop <hello@shop.example>") with `display_name` instead of its own, if one is given."""
    name = header_safe(display_name)
    if not name:
        return configured
    _, address = parseaddr(configured)
    return Address(display_name=name, addr_spec=address)


def transfer_encoding(part: str) -> str | None:
    """The Content-Transfer-Encoding for a body part; None: the email package's choice (7bit for ASCII)."""
    return None if part.isascii() else "base64"
