"""The email delivery worker: sends queued messages over SMTP and records the outcome.

Rows are claimed with `FOR UPDATE SKIP LOCKED` so several instances share the queue. The
Message-ID is derived from the message id, so a resend after a crash is recognisable.
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import aiosmtplib
from lifecycle_shared.runtime import ServiceRuntime

from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.settings import MessagingSettings

log = logging.getLogger(__name__)


def build_email(row, *, settings: MessagingSettings) -> EmailMessage:
    email = EmailMessage()
    email["From"] = settings.smtp_from
    email["To"] = row.recipient
    email["Subject"] = row.subject
    email["Message-ID"] = f"<{row.id}@lifecycle>"
    email["X-Lifecycle-Template"] = row.template
    email["X-Lifecycle-Customer"] = row.customer_id
    email.set_content(row.body)
    return email


async def deliver_once(runtime: ServiceRuntime, settings: MessagingSettings, *, limit: int = 20) -> int:
    async with runtime.engine.begin() as conn:
        rows = await repo.claim_queued(conn, limit=limit)
        for row in rows:
            try:
                await aiosmtplib.send(
                    build_email(row, settings=settings), hostname=settings.smtp_host, port=settings.smtp_port,
                    username=settings.smtp_username,
                    password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                    start_tls=settings.smtp_starttls, timeout=settings.smtp_timeout_s)
                await repo.mark_sent(conn, message_id=row.id)
            except (aiosmtplib.SMTPException, OSError) as error:
                give_up = row.attempts + 1 >= settings.max_send_attempts
                log.warning("email not sent", extra={"message_id": row.id, "error": repr(error), "give_up": give_up})
                await repo.mark_failed(conn, message_id=row.id, error=repr(error), give_up=give_up,
                                       retry_in_s=5 * 2**row.attempts)
    return len(rows)


def email_worker(settings: MessagingSettings):
    async def deliver_emails(runtime: ServiceRuntime) -> None:
        while True:
            sent = await deliver_once(runtime, settings)
            if not sent:
                await asyncio.sleep(0.3)

    return deliver_emails
