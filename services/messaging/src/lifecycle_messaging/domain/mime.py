"""How a rendered message becomes MIME: whom it says it is from, how its parts are encoded. Pure.

The From address is the shop's (`smtp_from`); its display name is the rendered template's (the
brand, in the customer's language). Python's email package writes a non-ASCII subject or name as
RFC 2047 encoded words - or as UTF-8 when the message goes out with SMTPUTF8, which aiosmtplib
uses only when an address needs it. A long non-ASCII subject is folded by `EncodedSubject`: Python 3.11's
folder puts the space between two words at the fold, between two encoded words, where a reader drops it
(RFC 2047 section 6.2: "hết hạn vào" read as "hết hạnvào"; CPython gh-144156). A body part that is not
ASCII (Vietnamese, Thai) is base64: its bytes reach the reader exactly, whether or not a server on the
way takes 8-bit data, and no relay rewrites its line ends. An ASCII part stays readable as 7bit.
"""

from __future__ import annotations

from email.header import Header
from email.headerregistry import Address
from email.policy import EmailPolicy, Policy
from email.utils import parseaddr

from lifecycle_messaging.domain.addresses import header_safe


def sender(configured: str, *, display_name: str) -> str | Address:
    """`configured` ("Shop <hello@shop.example>") with `display_name` instead of its own, if one is given."""
    name = header_safe(display_name)
    if not name:
        return configured
    _, address = parseaddr(configured)
    return Address(display_name=name, addr_spec=address)


MAX_LINE_BYTES = 998


class EncodedSubject(str):
    """A subject that folds itself as the email package's older `Header` does: every space inside an encoded
    word, so none is lost when the folded words are read back together. For a non-ASCII subject only."""

    name = "Subject"  # EmailMessage keeps a value with the header's name as it is, and asks it to fold itself

    def fold(self, *, policy: Policy) -> str:
        if isinstance(policy, EmailPolicy) and policy.utf8:
            # Sent with SMTPUTF8: the header is UTF-8 itself, on one line when it fits the 998 bytes a line may
            # hold (RFC 5322) - the email package's folding would put a space before a long Thai run.
            line = f"{self.name}: {self}"
            if len(line.encode()) <= MAX_LINE_BYTES:
                return line + policy.linesep
            return str(policy.header_factory(self.name, str(self)).fold(policy=policy))
        encoded = Header(str(self), "utf-8", header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


def subject_header(subject: str) -> str:
    """What to set as the Subject: ASCII as it is (the email package folds it at spaces), else EncodedSubject."""
    return subject if subject.isascii() else EncodedSubject(subject)


def transfer_encoding(part: str) -> str | None:
    """The Content-Transfer-Encoding for a body part; None: the email package's choice (7bit for ASCII)."""
    return None if part.isascii() else "base64"
