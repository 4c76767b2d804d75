"""The email delivery worker: sends queued messages over SMTP, one outcome recorded per message.

Each round claims a few due messages in a short transaction that counts the attempt and leases
them, then sends them one by one and records each outcome in a transaction of its own. Nothing
one message does - a header that cannot be built, an address the server refuses, a crash
mid-send - touches another: a message that cannot be sent is marked `failed` with its reason
after at most `max_send_attempts`, and what was sent stays sent. The Message-ID is derived from
the message id, so a resend after a crash is recognisable.

A delayed message claimed before its delay is over goes back to wait (`campaigning.put_back_early`); one
whose campaign was disabled, whose cause was undone (the cart bought) or whose customer left the audience is
suppressed (`campaigning.suppress_off_campaign`). Before anything is sent, each claimed message is judged
again (`domain.suppression`): one whose
transition a newer one of the customer has overtaken since it was queued, or that has grown older
than the freshness window while it waited (the SMTP server down, the worker behind), is recorded
`suppressed` with its reason in the claim's transaction and never sent. So is a marketing message
to an address whose consent does not allow it (`domain.consent`, reason `consent`): consent changed
since it was queued counts. Then the gateway (`gateway.py`): a marketing message to a person in its
campaign's holdout is suppressed `holdout`; one inside the customer's quiet hours or beyond the frequency
caps is held until its opening (the claim's attempt given back), or suppressed `frequency_cap` when the
caps would keep it too long. Every marketing email carries the RFC 8058 one-click unsubscribe headers
with the signed link its body has (`domain.unsubscribe`; a row queued without one gets one now).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

import aiosmtplib
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.errors import describe_error
from lifecycle_shared.runtime import ServiceRuntime

from lifecycle_messaging import metrics
from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.campaigning import put_back_early, suppress_off_campaign
from lifecycle_messaging.consenting import Links, suppress_without_consent
from lifecycle_messaging.db import contacts
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.addresses import header_safe
from lifecycle_messaging.domain.mime import sender, subject_header, transfer_encoding
from lifecycle_messaging.domain.templates import Rendered
from lifecycle_messaging.gateway import gate
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness, suppress_overtaken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    sent: bool
    reason: str = ""
    permanent: bool = False  # retrying cannot help


def links_of(settings: MessagingSettings, freshness: Freshness) -> Links:
    return Links(base_url=settings.public_url, key=settings.unsubscribe_key,
                 valid_for=settings.unsubscribe_valid_for, clock=freshness.clock)


def build_email(row, *, settings: MessagingSettings, unsubscribe_url: str | None = None) -> EmailMessage:
    """`unsubscribe_url` (else the row's own): the List-Unsubscribe headers (RFC 8058), for marketing mail."""
    content = Rendered.from_columns(template=row.template, subject=row.subject, body=row.body, html=row.html,
                                    locale=row.locale, preheader=row.preheader, from_name=row.from_name)
    email = EmailMessage()  # multipart/alternative: text, then HTML (a row from before templates: text only)
    email["From"] = sender(settings.smtp_from, display_name=content.from_name)
    email["To"] = header_safe(row.recipient or "")
    email["Subject"] = subject_header(header_safe(row.subject))
    email["Message-ID"] = f"<{row.id}@lifecycle>"
    email["X-Lifecycle-Template"] = header_safe(row.template)
    email["X-Lifecycle-Customer"] = header_safe(row.customer_id)
    if unsubscribe := unsubscribe_url or row.unsubscribe_url:
        email["List-Unsubscribe"] = f"<{header_safe(unsubscribe, limit=4000)}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.set_content(content.text, cte=transfer_encoding(content.text))
    if content.html:
        email.add_alternative(content.html, subtype="html", cte=transfer_encoding(content.html))
    return email


def _refused(error: aiosmtplib.SMTPException) -> Outcome:
    """An SMTP refusal, by code only: the server's text may quote the address."""
    codes = [r.code for r in error.recipients] if isinstance(error, aiosmtplib.SMTPRecipientsRefused) else [
        getattr(error, "code", 0)]
    permanent = bool(codes) and all(500 <= code < 600 for code in codes)
    return Outcome(False, f"{type(error).__name__}: SMTP {', '.join(map(str, codes))}", permanent=permanent)


async def send(row, settings: MessagingSettings, links: Links | None = None) -> Outcome:
    try:
        fallback = links.for_template(row.template, row.id) if links and not row.unsubscribe_url else None
        email = build_email(row, settings=settings, unsubscribe_url=fallback)
    except Exception as error:  # noqa: BLE001 - whatever the reason, this message cannot be built
        return Outcome(False, f"cannot build the email: {describe_error(error)}", permanent=True)
    try:
        # aiosmtplib's timeout is per operation; the lease a claim takes counts on a bound for all.
        await asyncio.wait_for(aiosmtplib.send(
            email, hostname=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls, timeout=settings.smtp_timeout_s), settings.smtp_timeout_s)
    except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as error:
        return _refused(error)
    except aiosmtplib.SMTPNotSupported as error:  # e.g. an internationalized address, no SMTPUTF8
        return Outcome(False, describe_error(error), permanent=True)
    except Exception as error:  # noqa: BLE001 - connection lost, timeout, a bug: retried, bounded
        return Outcome(False, describe_error(error))
    return Outcome(True)


async def record(conn, row, outcome: Outcome, settings: MessagingSettings, *, at: datetime | None = None) -> None:
    """`at`: the service clock's instant (a sent message's, for the frequency caps)."""
    if outcome.sent:
        await repo.mark_sent(conn, message_id=row.id, at=at)
        metrics.MESSAGES_SENT.inc()
        return
    give_up = outcome.permanent or row.attempts >= settings.max_send_attempts
    log.warning("email not sent", extra={"message_id": row.id, "attempt": row.attempts,
                                         "reason": outcome.reason, "give_up": give_up})
    await repo.mark_unsent(conn, message_id=row.id, reason=outcome.reason,
                           retry_in_s=None if give_up else settings.retry_base_s * 2 ** (row.attempts - 1))


async def deliver_once(runtime: ServiceRuntime, settings: MessagingSettings, freshness: Freshness,
                       book: CampaignBook | None = None) -> int:
    """One round: claim due messages, put back those whose delay is not over, suppress those that no longer
    follow where their customer stands or their campaign's conditions, or that consent or the holdout forbid,
    hold those quiet hours or the caps defer, send the rest. The number claimed and neither put back nor held
    (0: nothing was due, or all of it waits). `book`: the campaigns in force (default: the shipped ones)."""
    book = book or CampaignBook()
    # Claimed messages are sent one after another: the lease covers the slowest possible round.
    lease_s = settings.send_batch_size * settings.smtp_timeout_s + 30
    now = freshness.clock()
    async with runtime.engine.begin() as conn:
        claimed = await repo.claim_due(conn, limit=settings.send_batch_size, lease_s=lease_s)
        early = await put_back_early(conn, claimed, now)
        overtaken = await suppress_overtaken(conn, [row for row in claimed if row.id not in early], freshness)
        overtaken |= early
        overtaken |= await suppress_off_campaign(conn, [row for row in claimed if row.id not in overtaken], book)
        overtaken |= await suppress_without_consent(conn, [row for row in claimed if row.id not in overtaken],
                                                    require_opt_in=settings.require_opt_in,
                                                    erasure_pepper=pepper_of(settings.erasure_pepper))
        gated = await gate(conn, [row for row in claimed if row.id not in overtaken], settings, now, book)
        overtaken |= gated.ids
    links = links_of(settings, freshness)
    for row in (row for row in claimed if row.id not in overtaken):
        if row.attempts > settings.max_send_attempts:  # earlier attempts died mid-send
            outcome = Outcome(False, f"gave up after {row.attempts - 1} interrupted attempts", permanent=True)
        else:
            outcome = await send(row, settings, links)
        async with runtime.engine.begin() as conn:
            await record(conn, row, outcome, settings, at=freshness.clock())
    return len(claimed) - len(gated.held) - len(early)


def email_worker(settings: MessagingSettings, freshness: Freshness, book: CampaignBook | None = None):
    async def deliver_emails(runtime: ServiceRuntime) -> None:
        while True:
            if not await deliver_once(runtime, settings, freshness, book):
                await asyncio.sleep(settings.idle_poll_s)

    return deliver_emails


def contact_sweeper(settings: MessagingSettings):
    async def release_waiting_messages(runtime: ServiceRuntime) -> None:
        while True:
            async with runtime.engine.begin() as conn:
                released = await contacts.release_for_recent(conn, within_s=settings.contact_sweep_window_s)
            if released:
                log.info("released messages waiting for an address", extra={"count": released})
            await asyncio.sleep(settings.contact_sweep_interval_s)

    return release_waiting_messages
