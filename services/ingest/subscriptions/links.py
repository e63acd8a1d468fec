"""The two links a reader follows from an email: confirm, and one-click unsubscribe (RFC 8058).

They work with their token alone (no API token), answer small HTML pages for a person, and
GET never unsubscribes: mail scanners follow links, while RFC 8058 mail clients POST.
"""

from __future__ import annotations

import logging
from html import escape

from flask import Response, current_app
from flask_smorest import Blueprint
from werkzeug.exceptions import BadRequest, UnprocessableEntity

from services.ingest.subscriptions.resources import invalid_request
from services.ingest.subscriptions.schemas import TokenArgsSchema
from shared.deliveries import DeliveryStore
from shared.runtime import runtime_for
from shared.subscriptions import Conflict, NotFound, SubscriptionStore

log = logging.getLogger("pressroom.ingest")

blp = Blueprint("subscription-links", __name__, description="Confirm and unsubscribe links sent by email")
blp.register_error_handler(UnprocessableEntity, invalid_request)
blp.register_error_handler(BadRequest, invalid_request)


def _runtime():
    return runtime_for(current_app.extensions["pressroom"]["settings"])


def _page(title: str, text: str, status: int = 200, form: str = "") -> Response:
    html = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        '<meta name=viewport content="width=device-width"></head>'
        f'<body style="font-family: Georgia, serif; max-width: 36em; margin: 3em auto">'
        f"<h1>{escape(title)}</h1><p>{escape(text)}</p>{form}</body></html>"
    )
    return Response(html, status=status, mimetype="text/html", headers={"Cache-Control": "no-store"})


@blp.route("/v1/subscriptions/confirm", methods=["GET"])
@blp.doc(summary="Confirm an email subscription (the link in the confirmation email)", security=[])
@blp.arguments(TokenArgsSchema, location="query")
@blp.alt_response(200, description="Confirmed (HTML page)")
@blp.alt_response(404, description="Unknown or used-up token")
def confirm(args: dict):
    store = SubscriptionStore(_runtime().redis)
    try:
        sub = store.confirm(args["token"])
    except NotFound:
        return _page("Link not valid", "This confirmation link is not valid (or the subscription was removed).", 404)
    except Conflict as exc:
        return _page("Link expired", str(exc), 410)
    return _page("Subscription confirmed", f"You will get an email about {', '.join(sub.topics)}.")


@blp.route("/v1/unsubscribe", methods=["GET"])
@blp.doc(summary="Unsubscribe page (a button that posts the one-click unsubscribe)", security=[])
@blp.arguments(TokenArgsSchema, location="query")
@blp.alt_response(200, description="HTML page with the unsubscribe button")
def unsubscribe_page(args: dict):
    form = (f'<form method=post action="?token={escape(args["token"])}">'
            '<input type=hidden name=List-Unsubscribe value=One-Click>'
            "<button type=submit>Unsubscribe</button></form>")
    return _page("Unsubscribe", "Stop the emails from this subscription?", form=form)


@blp.route("/v1/unsubscribe", methods=["POST"])
@blp.doc(summary="One-click unsubscribe (RFC 8058): the token alone removes the subscription", security=[])
@blp.arguments(TokenArgsSchema, location="query")
@blp.alt_response(200, description="Unsubscribed (HTML page)")
@blp.alt_response(404, description="Unknown token (already unsubscribed?)")
def unsubscribe(args: dict):
    rt = _runtime()
    store = SubscriptionStore(rt.redis)
    try:
        sub = store.by_unsubscribe_token(args["token"])
        store.delete(sub.id)
    except NotFound:
        return _page("Already unsubscribed", "This link matches no subscription: you get no more emails from it.",
                     404)
    DeliveryStore(rt.redis).drop_log(sub.id)
    log.info("subscription %s unsubscribed by its link", sub.id)
    return _page("Unsubscribed", "You will get no more emails from this subscription.")
