"""Email transport: multipart text + HTML over SMTP (`PRESSROOM_SMTP_URL`), one-click unsubscribe.

Every notification carries RFC 8058 one-click unsubscribe headers pointing at the API's
token-only endpoint, and a Message-ID derived from the delivery id so that a retry of the
same delivery is recognisably the same message.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from functools import cache
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.notify.transports import DeliveryError, Result
from shared.settings import Settings
from shared.subscriptions import Subscription

TIMEOUT = 15.0
LABELS = {"article.published": "", "article.updated": "Updated: ", "article.withdrawn": "Withdrawn: "}


@dataclass(frozen=True)
class SmtpServer:
    secure: bool  # smtps: TLS from the first byte
    host: str
    port: int
    username: str = ""
    password: str = ""


def smtp_server(settings: Settings) -> SmtpServer:
    """The SMTP server from PRESSROOM_SMTP_URL; DeliveryError (transient) if none is set."""
    if not settings.smtp_url:
        raise DeliveryError("PRESSROOM_SMTP_URL is not set; email waits until it is")
    parts = urlsplit(settings.smtp_url)
    secure = parts.scheme == "smtps"
    return SmtpServer(
        secure=secure, host=parts.hostname or "127.0.0.1", port=parts.port or (465 if secure else 25),
        username=unquote(parts.username or ""), password=unquote(parts.password or ""),
    )


@cache
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
    )


def _render(name: str, **context) -> str:
    return _templates().get_template(name).render(**context)


def unsubscribe_url(settings: Settings, sub: Subscription) -> str:
    return f"{settings.public_api_url}/v1/unsubscribe?token={quote(sub.unsubscribe_token)}"


def confirm_url(settings: Settings, sub: Subscription) -> str:
    return f"{settings.public_api_url}/v1/subscriptions/confirm?token={quote(sub.confirm_token)}"


def _domain(settings: Settings) -> str:
    return settings.mail_from.rpartition("@")[2].strip(" >") or "pressroom.localhost"


def _site(settings: Settings) -> str:
    return urlsplit(settings.site_url).netloc or settings.site_url


def notification_message(settings: Settings, sub: Subscription, event: dict, did: str) -> EmailMessage:
    """The email for one article event: headline, summary, link, and unsubscribe headers."""
    label = LABELS.get(event["type"], "")
    context = {
        "label": label, "headline": event["headline"], "summary": event.get("summary", ""), "url": event["url"],
        "language": event.get("language", "en"), "topics": ", ".join(sub.topics), "site": _site(settings),
        "unsubscribe_url": unsubscribe_url(settings, sub),
    }
    msg = EmailMessage()
    msg["Subject"] = f"{label}{event['headline']}"
    msg["From"] = settings.mail_from
    msg["To"] = sub.target
    msg["Message-ID"] = f"<{did}@{_domain(settings)}>"
    msg["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(_render("notification.txt", **context))
    msg.add_alternative(_render("notification.html", **context), subtype="html")
    return msg


def confirmation_message(settings: Settings, sub: Subscription) -> EmailMessage:
    """The double opt-in email: the only thing sent to an address before it is confirmed."""
    context = {"site": _site(settings), "topics": ", ".join(sub.topics), "confirm_url": confirm_url(settings, sub)}
    msg = EmailMessage()
    msg["Subject"] = f"Confirm your subscription to {context['site']}"
    msg["From"] = settings.mail_from
    msg["To"] = sub.target
    msg["Message-ID"] = make_msgid(domain=_domain(settings))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(_render("confirm.txt", **context))
    msg.add_alternative(_render("confirm.html", **context), subtype="html")
    return msg


def send(settings: Settings, msg: EmailMessage) -> Result:
    """Hand one message to the SMTP server. Raises DeliveryError: a mailbox the server
    refuses for good (5xx) disables the subscription; other failures are retried."""
    server = smtp_server(settings)
    try:
        if server.secure:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=TIMEOUT, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
        with client:
            if not server.secure and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
            if server.username:
                client.login(server.username, server.password)
            client.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise DeliveryError(f"recipient refused: {code} {text}", disable=code >= 500, status=code,
                            answer=text[:200]) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP login failed: {exc.smtp_code}", status=exc.smtp_code) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(f"SMTP server answered {exc.smtp_code} {text}", permanent=exc.smtp_code >= 500,
                            status=exc.smtp_code, answer=text[:200]) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"cannot send email via {server.host}:{server.port}: {exc}") from None
    return Result(250, 0, "accepted")
