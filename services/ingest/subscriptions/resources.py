"""Subscription resources: subscribers, their secrets and delivery log, confirm and unsubscribe.

All behind the API token (the links a reader follows from an email are in `links.py`).
Webhook URLs pass the SSRF guard at creation and on every change, not only at delivery.
"""

from __future__ import annotations

import logging

import redis
from flask import current_app
from flask_smorest import Blueprint, abort
from werkzeug.exceptions import BadRequest, UnprocessableEntity

from services.ingest import auth, errors
from services.ingest.subscriptions.schemas import (
    DeliveryPageSchema,
    DeliverySchema,
    PageArgsSchema,
    SecretSchema,
    SubscriptionCreatedSchema,
    SubscriptionCreateSchema,
    SubscriptionPageSchema,
    SubscriptionPatchSchema,
    SubscriptionSchema,
)
from shared import netguard, tasknames
from shared.deliveries import DeliveryStore, webhook_id
from shared.ninjs import error_list
from shared.runtime import runtime_for
from shared.subscriptions import Conflict, NotFound, Subscription, SubscriptionStore

log = logging.getLogger("pressroom.ingest")

blp = Blueprint(
    "subscriptions", __name__,
    description="Subscriptions: webhook and email subscribers, signing secrets, delivery log",
)
TOKEN = [{"bearer": []}]
UNAVAILABLE = {"Retry-After": "5"}
DNS_TIMEOUT = 5.0  # the check resolves the webhook's host while the client waits


@blp.errorhandler(UnprocessableEntity)
@blp.errorhandler(BadRequest)
def invalid_request(error):
    """Request-parsing errors in the house shape, with field paths: {code, status, message, errors}."""
    payload, code, headers = errors.error_payload(error)
    messages = (getattr(error, "data", None) or {}).get("messages")
    if messages:
        flat = {k: v for location in messages.values() for k, v in (location.items()
                if isinstance(location, dict) else [("$", location)])}
        payload["errors"] = error_list(flat)
        payload["message"] = "The request is invalid." if code == 422 else "The body is not valid JSON."
    return payload, code, headers


@blp.errorhandler(redis.RedisError)
def _redis_down(error):
    log.error("redis unavailable: %s", error)
    body = {"code": 503, "status": "Service Unavailable", "message": "Pressroom's state store is unavailable."}
    return body, 503, UNAVAILABLE


@blp.before_request
def _require_token():
    """Authenticate before the body is parsed, so a caller without the token learns nothing else."""
    auth.require_token(current_app.extensions["pressroom"]["settings"])


def _ctx():
    settings = current_app.extensions["pressroom"]["settings"]
    rt = runtime_for(settings)
    return settings, rt, SubscriptionStore(rt.redis)


def view(sub: Subscription) -> dict:
    body = {
        "id": sub.id, "channel": sub.channel, "topics": sub.topics, "events": sub.events, "status": sub.status,
        "description": sub.description, "disabled_reason": sub.disabled_reason or None,
        "failing_since": sub.failing_since, "previous_secret_valid_until": sub.rotating_until,
        "created_at": sub.created_at, "updated_at": sub.updated_at,
    }
    body["url" if sub.channel == "webhook" else "email"] = sub.target
    return body


def _check_url(settings, url: str) -> None:
    """422 unless the URL resolves only to addresses a webhook may reach."""
    try:
        netguard.check_url(url, settings.webhook_allow_networks, dns_timeout=DNS_TIMEOUT)
    except (netguard.BlockedAddress, netguard.InvalidURL, netguard.FetchError) as exc:
        abort(422, message="The webhook URL cannot be used.", errors=[{"field": "url", "message": str(exc)}])


def _get(store: SubscriptionStore, sid: str) -> Subscription:
    try:
        return store.get(sid)
    except NotFound:
        abort(404, message=f"No subscription with id {sid!r}.")


@blp.route("/v1/subscriptions", methods=["POST"])
@blp.doc(summary="Subscribe a webhook or an email address to topics", security=TOKEN)
@blp.arguments(SubscriptionCreateSchema)
@blp.response(201, SubscriptionCreatedSchema, description="Created; a webhook's secret is in the answer, once")
@blp.alt_response(401, description="Missing or bad API token")
@blp.alt_response(422, description="Invalid request, or a URL that resolves to a refused address")
def create_subscription(data: dict):
    settings, rt, store = _ctx()
    target = data.get("url") or data["email"]
    if data["channel"] == "webhook":
        _check_url(settings, target)
    sub, secret = store.create(data["channel"], target, data["topics"], data["events"], data["description"])
    body = view(sub)
    if secret:
        body["secret"] = secret
        body["message"] = "Keep the secret: it verifies every delivery and is not shown again."
    else:
        try:
            current_app.extensions["pressroom"]["celery"].send_task(tasknames.NOTIFY_CONFIRM_EMAIL, args=[sub.id])
        except Exception as exc:
            log.error("cannot queue the confirmation of %s: %s", sub.id, exc)
            store.delete(sub.id)
            abort(503, message="Cannot queue the confirmation email now; nothing was created, retry.",
                  headers=UNAVAILABLE)
        body["message"] = "A confirmation link was sent to the address; nothing else is sent before it is followed."
    log.info("subscription %s created (%s, %d topics)", sub.id, sub.channel, len(sub.topics))
    return body


@blp.route("/v1/subscriptions", methods=["GET"])
@blp.doc(summary="Every subscription, newest first, a page at a time (never their secrets)", security=TOKEN)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, SubscriptionPageSchema)
@blp.alt_response(401, description="Missing or bad API token")
def list_subscriptions(args: dict):
    _settings, _rt, store = _ctx()
    subs, total = store.page(args["page"], args["per_page"])
    return {"items": [view(sub) for sub in subs], "page": args["page"], "per_page": args["per_page"], "total": total}


@blp.route("/v1/subscriptions/<string:sid>", methods=["GET"])
@blp.doc(summary="A subscription (never its secret)", security=TOKEN)
@blp.response(200, SubscriptionSchema)
@blp.alt_response(404, description="No such subscription")
def get_subscription(sid: str):
    _settings, _rt, store = _ctx()
    return view(_get(store, sid))


@blp.route("/v1/subscriptions/<string:sid>", methods=["PATCH"])
@blp.doc(summary="Pause or resume a subscription, or change its topics, events or URL", security=TOKEN)
@blp.arguments(SubscriptionPatchSchema)
@blp.response(200, SubscriptionSchema)
@blp.alt_response(404, description="No such subscription")
@blp.alt_response(409, description="Cannot resume an email subscription that is not confirmed")
@blp.alt_response(422, description="Invalid change")
def patch_subscription(data: dict, sid: str):
    settings, _rt, store = _ctx()
    sub = _get(store, sid)
    if "url" in data:
        if sub.channel != "webhook":
            abort(422, message="Only webhook subscriptions have a url.",
                  errors=[{"field": "url", "message": "Not a webhook subscription."}])
        _check_url(settings, data["url"])
    try:
        sub = store.update(sid, status=data.get("status"), topics=data.get("topics"), events=data.get("events"),
                           target=data.get("url"), description=data.get("description"))
    except NotFound:
        abort(404, message=f"No subscription with id {sid!r}.")
    except Conflict as exc:
        abort(409, message=str(exc))
    return view(sub)


@blp.route("/v1/subscriptions/<string:sid>", methods=["DELETE"])
@blp.doc(summary="Delete a subscription and its delivery log", security=TOKEN)
@blp.response(204)
@blp.alt_response(404, description="No such subscription")
def delete_subscription(sid: str):
    _settings, rt, store = _ctx()
    try:
        store.delete(sid)
    except NotFound:
        abort(404, message=f"No subscription with id {sid!r}.")
    DeliveryStore(rt.redis).drop_log(sid)
    return None


@blp.route("/v1/subscriptions/<string:sid>/rotate-secret", methods=["POST"])
@blp.doc(summary="Issue a new signing secret; the old one keeps signing for 24 hours", security=TOKEN)
@blp.response(200, SecretSchema)
@blp.alt_response(404, description="No such subscription")
@blp.alt_response(409, description="Not a webhook subscription")
def rotate_secret(sid: str):
    _settings, _rt, store = _ctx()
    try:
        sub, secret = store.rotate_secret(sid)
    except NotFound:
        abort(404, message=f"No subscription with id {sid!r}.")
    except Conflict as exc:
        abort(409, message=str(exc))
    return {"id": sub.id, "secret": secret, "previous_secret_valid_until": sub.rotating_until}


@blp.route("/v1/subscriptions/<string:sid>/deliveries", methods=["GET"])
@blp.doc(summary="The subscription's delivery attempts, newest first", security=TOKEN)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, DeliveryPageSchema)
@blp.alt_response(404, description="No such subscription")
def list_deliveries(args: dict, sid: str):
    _settings, rt, store = _ctx()
    _get(store, sid)
    items, total = DeliveryStore(rt.redis).log_page(sid, args["page"], args["per_page"])
    return {"items": items, "page": args["page"], "per_page": args["per_page"], "total": total}


def _delivery_view(record: dict) -> dict:
    return {
        "id": record["id"], "subscription_id": record["sub"], "event": record["type"],
        "article_id": record["article"], "version": int(record["version"]), "state": record["state"],
        "attempts": int(record["attempts"]),
        "next_attempt_at": float(record["next_at"]) if record["state"] == "pending" else None,
        "last_http_status": int(record["last_status"]) if record.get("last_status") else None,
        "last_error": record.get("last_error", ""), "webhook_id": webhook_id(record["id"]),
    }


def _delivery(rt, did: str) -> dict:
    record = DeliveryStore(rt.redis).get(did) if did.isalnum() and len(did) < 64 else None
    if record is None:
        abort(404, message=f"No delivery with id {did!r}.")
    return record


@blp.route("/v1/deliveries/<string:did>", methods=["GET"])
@blp.doc(summary="One delivery's state", security=TOKEN)
@blp.response(200, DeliverySchema)
@blp.alt_response(404, description="No such delivery")
def get_delivery(did: str):
    _settings, rt, _store = _ctx()
    return _delivery_view(_delivery(rt, did))


@blp.route("/v1/deliveries/<string:did>/retry", methods=["POST"])
@blp.doc(summary="Send a failed delivery again, with a fresh retry schedule", security=TOKEN)
@blp.response(202, DeliverySchema)
@blp.alt_response(404, description="No such delivery")
@blp.alt_response(409, description="The delivery has not failed, or its subscription is not active")
def retry_delivery(did: str):
    _settings, rt, store = _ctx()
    record = _delivery(rt, did)
    sub = _get(store, record["sub"])
    if sub.status != "active":
        abort(409, message=f"The subscription is {sub.status}; resume it (PATCH status=active) first.")
    deliveries = DeliveryStore(rt.redis)
    outcome = deliveries.reset(did)
    if outcome != "reset":
        abort(409, message=f"Only failed or cancelled deliveries can be retried; this one is {outcome}.")
    try:
        current_app.extensions["pressroom"]["celery"].send_task(tasknames.NOTIFY_DELIVER, args=[did])
    except Exception as exc:  # the due set re-queues it within a minute
        log.warning("cannot queue retry of %s now (%s); the scheduler will", did, exc)
    return _delivery_view(deliveries.get(did))
