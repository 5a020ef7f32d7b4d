"""``email.send``: render a template from ``templates/emails/`` and send it through Django's
e-mail backend (SMTP, an e-mail service through django-anymail, or the console).

The template is checked when the task is scheduled, so a typo fails the caller, not the worker.
Temporary trouble (SMTP 4xx replies, connection errors, timeouts, an e-mail service's 5xx or
429) is retried by the task's policy; a 5xx SMTP reply or an address the server or service
refuses fails the task at once: sending the same message again would be refused again.
"""

from __future__ import annotations

import base64
import binascii
import re
import smtplib
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import DNS_NAME
from django.core.validators import validate_email
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..definitions.registry import task
from ..definitions.retry import Exponential
from ..definitions.task_types import TaskType
from ..errors import PermanentError

TEMPLATE_DIR = "emails"
#: extensions a client may put on a template's name (see template_base_name)
TEMPLATE_EXTENSIONS = frozenset({"hbs", "handlebars", "html", "txt", "ejs", "pug", "mjml"})
_TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,99}$")


class TemporaryMailError(Exception):
    """The mail server or service may accept the message later: the task is retried."""


class Attachment(BaseModel):
    filename: str = Field(min_length=1, max_length=255)
    #: the file's bytes, base64-encoded
    content: str
    mimetype: str = "application/octet-stream"

    @field_validator("content")
    @classmethod
    def is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("content must be base64-encoded") from None
        return value


def _addresses(value: Any) -> list[str]:
    """One address or a list of them; each must be a valid e-mail address."""
    items = [value] if isinstance(value, str) else value or []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("must be an e-mail address or a list of them")
    for address in items:
        try:
            validate_email(address)
        except ValidationError:
            raise ValueError(f"{address!r} is not a valid e-mail address") from None
    return items


def template_base_name(template: str) -> str:
    """``welcome-email.hbs`` names the same template as ``welcome-email``: clients written for a
    Node mailer (Handlebars, EJS, Pug) name the file; taskhub's templates are the ``.txt`` and
    ``.html`` pair of that name. Only the known template extensions are taken off."""
    stem, dot, extension = template.rpartition(".")
    if dot and stem and extension.lower() in TEMPLATE_EXTENSIONS:
        return stem
    return template


def template_names(template: str) -> tuple[str, str]:
    return f"{TEMPLATE_DIR}/{template}.txt", f"{TEMPLATE_DIR}/{template}.html"


def available_templates(template: str) -> list[str]:
    """The text and HTML templates that exist for ``template`` (at least one must)."""
    found = []
    for name in template_names(template):
        try:
            get_template(name)
        except TemplateDoesNotExist:
            continue
        found.append(name)
    return found


class SendEmail(BaseModel):
    """Payload of ``email.send``."""

    model_config = ConfigDict(populate_by_name=True)

    to: list[str] = Field(min_length=1)
    subject: str = Field(min_length=1, max_length=998)
    template: str
    context: dict[str, Any] = Field(default_factory=dict)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: list[str] = Field(default_factory=list, alias="replyTo")
    from_email: str | None = Field(default=None, alias="from")
    attachments: list[Attachment] = Field(default_factory=list)

    @field_validator("to", "cc", "bcc", "reply_to", mode="before")
    @classmethod
    def valid_addresses(cls, value: Any) -> list[str]:
        return _addresses(value)

    @field_validator("from_email")
    @classmethod
    def valid_sender(cls, value: str | None) -> str | None:
        if value is not None:
            # "Name <address>" is allowed for the sender.
            match = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", value)
            _addresses(match.group(2) if match else value)
        return value

    @field_validator("subject")
    @classmethod
    def one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("subject must be a single line")
        return value

    @field_validator("template")
    @classmethod
    def template_exists(cls, value: str) -> str:
        value = template_base_name(value)
        if not _TEMPLATE_NAME.match(value):
            raise ValueError("template must be a name like 'welcome' (a-z, 0-9, _ and -)")
        if not available_templates(value):
            txt, html = template_names(value)
            raise ValueError(f"unknown e-mail template {value!r} (no {txt} or {html})")
        return value


def build_message(payload: SendEmail, *, message_id: str | None = None) -> EmailMultiAlternatives:
    """The message as it will be sent: text part, HTML alternative, attachments."""
    txt_name, html_name = template_names(payload.template)
    found = available_templates(payload.template)
    context = {**payload.context, "subject": payload.subject}
    text = render_to_string(txt_name, context) if txt_name in found else None
    html = render_to_string(html_name, context) if html_name in found else None
    message = EmailMultiAlternatives(
        subject=payload.subject,
        body=text if text is not None else "",
        from_email=payload.from_email or settings.DEFAULT_FROM_EMAIL,
        to=payload.to,
        cc=payload.cc,
        bcc=payload.bcc,
        reply_to=payload.reply_to,
        headers={"Message-ID": message_id} if message_id else None,
    )
    if html is not None:
        if text is None:
            message.body = html
            message.content_subtype = "html"
        else:
            message.attach_alternative(html, "text/html")
    for item in payload.attachments:
        message.attach(item.filename, base64.b64decode(item.content), item.mimetype)
    return message


def deliver(message: EmailMultiAlternatives) -> None:
    """Send through the configured backend, sorting failures into temporary and permanent."""
    try:
        get_connection(fail_silently=False).send_messages([message])
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {code for code, _ in exc.recipients.values()}
        detail = ", ".join(
            f"{a}: {c} {m.decode(errors='replace')}" for a, (c, m) in exc.recipients.items()
        )
        if all(400 <= code < 500 for code in codes):
            raise TemporaryMailError(f"recipients deferred: {detail}") from exc
        raise PermanentError(f"recipients refused: {detail}") from exc
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        if 400 <= exc.smtp_code < 500:
            raise TemporaryMailError(f"SMTP {exc.smtp_code}: {text}") from exc
        raise PermanentError(f"SMTP {exc.smtp_code}: {text}") from exc
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
        raise TemporaryMailError(f"cannot reach the mail server: {exc}") from exc
    except Exception as exc:
        _classify_service_error(exc)
        raise


def _classify_service_error(exc: Exception) -> None:
    """django-anymail errors: refused addresses and 4xx answers won't get better by retrying."""
    # Imported on use: only a send through an e-mail service (ANYMAIL_ESP) gets here.
    try:
        from anymail.exceptions import (
            AnymailAPIError,
            AnymailInvalidAddress,
            AnymailRecipientsRefused,
        )
    except ImportError:  # not installed (the host's choice): no anymail error to classify
        return
    if isinstance(exc, AnymailInvalidAddress | AnymailRecipientsRefused):
        raise PermanentError(f"e-mail service refused the message: {exc}") from exc
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            raise PermanentError(f"e-mail service answered {status}: {exc}") from exc
        raise TemporaryMailError(f"e-mail service error: {exc}") from exc


@task(
    "email.send",
    queue="email",
    type=TaskType.NOTIFICATION_DELIVERY,
    schema=SendEmail,
    # The task-queue document's email queue: 3 attempts, exponential from 2 s (2 → 4).
    max_attempts=3,
    retry=Exponential(initial=2, cap=300),
    timeout=60,
)
def send_email(payload: SendEmail, ctx) -> dict:
    """Render ``templates/emails/<template>.txt``/``.html`` and send the message."""
    # The same Message-ID on every attempt lets receivers drop a duplicate if an attempt sent
    # the message but died before recording it.
    message_id = f"<taskhub.{ctx.task_id}@{DNS_NAME}>"
    message = build_message(payload, message_id=message_id)
    deliver(message)
    recipients = len(payload.to) + len(payload.cc) + len(payload.bcc)
    ctx.logger.info("sent %r (%s) to %d recipients", payload.subject, payload.template, recipients)
    return {"message_id": message_id, "recipients": recipients, "template": payload.template}
