"""Email through a real SMTP server (aiosmtpd): double opt-in, the notification, one-click unsubscribe."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

from services.notify import confirmations, deliveries
from services.notify.transports import DeliveryError, email
from shared.runtime import Runtime
from shared.subscriptions import SubscriptionStore
from tests.conftest import auth_headers
from tests.notify.helpers import article_event, deliver, log, queue, record


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _link(message, pattern: str) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(pattern, text).group(0)


def test_email_double_opt_in_notification_and_one_click_unsubscribe(notify_rt, notify_client, smtp_server):
    inbox = smtp_server.handler.messages
    answer = notify_client.post("/v1/subscriptions", headers=auth_headers(), json={
        "channel": "email", "email": "reader@example.test", "topics": ["défence"]})
    assert answer.status_code == 201, answer.json
    sub = answer.get_json()
    assert sub["status"] == "pending" and "secret" not in sub

    assert deliver(notify_rt, article_event()) == {}  # nothing before confirmation
    assert confirmations.send_confirmation(notify_rt, sub["id"]) == "sent"
    assert confirmations.send_confirmation(notify_rt, sub["id"]) == "already sent"
    (confirmation,) = inbox
    assert confirmation["To"] == "reader@example.test"
    assert "Confirm" in confirmation["Subject"]
    link = _link(confirmation, r"http://\S+/v1/subscriptions/confirm\?token=\S+")
    assert link.startswith(notify_rt.settings.public_api_url)
    html = confirmation.get_body(("html",)).get_content()
    assert "Confirm my subscription" in html

    page = notify_client.get(_path(link))  # no API token: the link alone
    assert page.status_code == 200 and b"confirmed" in page.data
    assert notify_client.get(_path(link)).status_code == 200  # a second click is harmless
    assert SubscriptionStore(notify_rt.redis).get(sub["id"]).status == "active"

    event = article_event()
    (did, outcome), = deliver(notify_rt, event).items()
    assert outcome == "delivered"
    notification = inbox[-1]
    assert len(inbox) == 2
    assert notification["Subject"] == event["headline"]
    assert notification["From"] == "Pressroom News <news@pressroom.test>"
    assert notification["Message-ID"] == f"<{did}@pressroom.test>"
    assert notification.get_content_type() == "multipart/alternative"
    text = notification.get_body(("plain",)).get_content()
    html = notification.get_body(("html",)).get_content()
    for part in (text, html):
        assert event["headline"] in part and event["summary"] in part and event["url"] in part
    unsubscribe = notification["List-Unsubscribe"]
    assert re.fullmatch(r"<http://127\.0\.0\.1:\d+/v1/unsubscribe\?token=\S+>", unsubscribe)
    assert notification["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert log(notify_rt, sub["id"])[0]["status"] == "delivered"

    url = unsubscribe.strip("<>")
    assert notify_client.get(_path(url)).status_code == 200  # the page only: GET never unsubscribes
    assert SubscriptionStore(notify_rt.redis).get(sub["id"]).status == "active"
    done = notify_client.post(_path(url), data="List-Unsubscribe=One-Click",
                              content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200 and b"Unsubscribed" in done.data
    assert notify_client.get(f"/v1/subscriptions/{sub['id']}", headers=auth_headers()).status_code == 404
    assert deliver(notify_rt, article_event()) == {}
    assert len(inbox) == 2


def test_updated_and_withdrawn_emails_say_so(notify_rt, smtp_server):
    sub, _ = SubscriptionStore(notify_rt.redis).create("email", "r@example.test", ["Defence"], [])
    SubscriptionStore(notify_rt.redis).confirm(sub.confirm_token)
    event = article_event()
    deliver(notify_rt, {**event, "type": "article.updated", "version": 2})
    deliver(notify_rt, {**event, "type": "article.withdrawn", "version": 2})
    subjects = [m["Subject"] for m in smtp_server.handler.messages]
    assert subjects == [f"Updated: {event['headline']}", f"Withdrawn: {event['headline']}"]


def test_a_refused_mailbox_disables_the_subscription(notify_rt, smtp_server):
    store = SubscriptionStore(notify_rt.redis)
    sub, _ = store.create("email", "bounce@example.test", ["Defence"], [])
    store.confirm(sub.confirm_token)
    (did,) = queue(notify_rt, article_event())
    assert deliveries.attempt(notify_rt, did) == "failed"
    assert "550" in record(notify_rt, did)["last_error"]
    assert store.get(sub.id).status == "disabled"
    assert smtp_server.handler.messages == []


def test_smtp_down_is_retried(notify_rt, notify_settings, refused_url):
    port = urlsplit(refused_url).port
    down = Runtime(dataclasses.replace(notify_settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    store = SubscriptionStore(down.redis)
    sub, _ = store.create("email", "r@example.test", ["Defence"], [])
    store.confirm(sub.confirm_token)
    (did,) = queue(down, article_event())
    assert deliveries.attempt(down, did) == "retrying"
    assert record(down, did)["state"] == "pending"
    assert store.get(sub.id).status == "active"


def test_smtp_url_forms(notify_settings):
    plain = email.smtp_server(dataclasses.replace(notify_settings, smtp_url="smtp://127.0.0.1:2525"))
    assert (plain.secure, plain.host, plain.port, plain.username) == (False, "127.0.0.1", 2525, "")
    secure = email.smtp_server(dataclasses.replace(notify_settings, smtp_url="smtps://me%40x.test:p%3Ass@mail.test"))
    assert (secure.secure, secure.host, secure.port, secure.username, secure.password) == (
        True, "mail.test", 465, "me@x.test", "p:ss")
    try:
        email.smtp_server(dataclasses.replace(notify_settings, smtp_url=""))
    except DeliveryError as exc:
        assert not exc.permanent
    else:
        raise AssertionError("no SMTP URL must be a transient DeliveryError")
