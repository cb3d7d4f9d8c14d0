"""Outgoing e-mail.

Two backends, chosen by ``MAIL_BACKEND``:

* ``database`` (the embedded default): the message is stored in ``sent_emails``
  in the same transaction as the change that caused it and written to the log, so
  a person trying the portal can read invitations at ``/dev/mailbox``.
* ``smtp``: the message is handed to the SMTP server only after the transaction
  committed (never for a change that was rolled back).
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app
from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.db import Base, BigID, after_commit, utcnow

log = logging.getLogger(__name__)


class SentEmail(Base):
    """E-mails kept for reading in the embedded mode (identity mail, not tenant-owned)."""

    __tablename__ = "sent_emails"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    to: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def build_message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    # Header injection is impossible through EmailMessage, but keep subjects one line.
    message["Subject"] = " ".join(subject.splitlines())
    message["Message-ID"] = make_msgid(domain="portal.localhost")
    message.set_content(body)
    return message


def send_email(session: Session, to: str, subject: str, body: str) -> None:
    settings = current_app.extensions["portal.settings"]
    if settings.mail_backend == "smtp":
        message = build_message(settings.mail_from, to, subject, body)
        host, port, timeout = settings.smtp_host, settings.smtp_port, settings.smtp_timeout

        def deliver() -> None:
            with smtplib.SMTP(host, port, timeout=timeout) as smtp:
                smtp.send_message(message)

        after_commit(session, deliver)
        return
    session.add(SentEmail(to=to, subject=subject, body=body))
    after_commit(session, lambda: log.info("e-mail kept for %s: %s | %s", to, subject, body))


def deliver_now(session: Session, to: str, subject: str, text: str, html: str | None = None) -> None:
    """Send at once (workers: the caller's outbox event is the retry). SMTP errors propagate."""
    settings = current_app.extensions["portal.settings"]
    if settings.mail_backend != "smtp":
        session.add(SentEmail(to=to, subject=subject, body=text))
        log.info("e-mail kept for %s: %s", to, subject)
        return
    message = build_message(settings.mail_from, to, subject, text)
    if html:
        message.add_alternative(html, subtype="html")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout) as smtp:
        smtp.send_message(message)
