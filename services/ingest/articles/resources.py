"""Article resources: the webhook that takes NINJS documents, status, withdrawal."""

from __future__ import annotations

import json
import logging

import redis
from flask import current_app, jsonify, request
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError

from services.ingest import auth, metrics
from services.ingest.articles import intake, superdesk
from services.ingest.articles.schemas import AcceptedSchema, ArticleStatusSchema
from services.ingest.idempotency import Claim, Idempotency, Replay
from shared import keys
from shared.ninjs import Article, article_from_loaded, error_list, load_ninjs
from shared.runtime import runtime_for
from shared.storage import StorageUnavailable

log = logging.getLogger("pressroom.ingest")

blp = Blueprint("articles", __name__, description="Articles: the NINJS webhook, status and withdrawal")

UNAVAILABLE = {"Retry-After": "5"}


def _ctx():
    ext = current_app.extensions["pressroom"]
    return ext["settings"], runtime_for(ext["settings"]), ext["celery"]


def _json(body: dict, status: int):
    """A finished Response: error and replayed bodies must not pass through the 202 schema."""
    response = jsonify(body)
    response.status_code = status
    return response


def _replay(replay: Replay):
    response = _json(replay.body, replay.status)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _accepted_body(aid: str, uri: str, decision, settings) -> dict:
    body = {
        "id": aid,
        "uri": uri,
        "version": decision.version,
        "status": decision.status,
        "outcome": decision.outcome,
        "status_url": f"{settings.public_api_url}/v1/articles/{aid}",
    }
    if decision.outcome == "stale":
        body["message"] = f"Version {decision.version} or newer is already stored; nothing changed."
    return body


@blp.route("/v1/articles", methods=["POST"])
@blp.doc(
    summary="Publish, correct or withdraw an article (NINJS 1.x webhook)",
    security=[{"standardWebhooks": []}, {"superdesk": []}, {"bearer": []}],
    requestBody={"required": True, "content": {"application/json": {"schema": "NinjsArticle"}}},
)
@blp.response(202, AcceptedSchema, description="Stored durably and queued")
@blp.alt_response(200, schema=AcceptedSchema, description="An equal or newer version is stored; nothing changed")
@blp.alt_response(400, description="Body is not JSON")
@blp.alt_response(401, description="Missing or bad signature / token")
@blp.alt_response(409, description="The same webhook-id is being processed right now; retry")
@blp.alt_response(413, description="Body larger than PRESSROOM_MAX_BODY_BYTES")
@blp.alt_response(415, description="Content-Type is not JSON")
@blp.alt_response(422, description="Invalid document: errors lists field paths and messages")
@blp.alt_response(503, description="Storage or Redis unavailable; nothing was accepted, retry")
def post_article():
    settings, rt, celery = _ctx()
    body = request.get_data(cache=False)
    source, idem_key = auth.authenticate_webhook(settings, body)
    if source == "superdesk" and (skipped := superdesk.ignored(body)):
        return _json(skipped, 200)
    name = keys.idempotency(source, idem_key) if idem_key else None
    article, problem = _validate(body)
    claim = Claim()
    if name or article:
        try:
            idem = rt.own(Idempotency)  # connects on a thread's first request
            claim = idem.claim(name, article.id if article else None)
        except redis.RedisError as exc:
            log.error("redis unavailable: %s", exc)
            abort(503, message="Pressroom's state store is unavailable; retry later.", headers=UNAVAILABLE)
    if isinstance(claim, Replay):
        metrics.ARTICLES.labels("replayed").inc()
        return _replay(claim)
    if claim is False:
        abort(409, message="A request with this webhook-id is in progress; retry shortly.")
    try:
        status, answer, remembered = _accept(settings, rt, celery, body, article, problem, claim, name)
    except Exception:
        if name:
            idem.release(name)
        raise
    if name and not remembered:
        idem.remember(name, status, answer, settings.idempotency_ttl)
    return _json(answer, status)


def _validate(body: bytes) -> tuple[Article | None, tuple[int, dict] | None]:
    """The article, or the client error (status, error body) it gets once its key is claimed."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        message = f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}."
        return None, (415, _error(415, "Unsupported Media Type", message))
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, (400, _error(400, "Bad Request", f"Body is not valid JSON: {exc}"))
    try:
        loaded = load_ninjs(doc)
    except ValidationError as exc:
        errors = error_list(exc.messages)
        return None, (422, _error(422, "Unprocessable Entity", "The NINJS document is invalid.", errors))
    return article_from_loaded(loaded), None


def _accept(settings, rt, celery, body: bytes, article, problem, claim: Claim, name: str | None):
    """Accept a validated article; returns (status, body, whether the answer is already remembered)."""
    if problem is not None:
        status, error = problem
        if status == 415:
            abort(415, message=error["message"])
        metrics.ARTICLES.labels("rejected").inc()
        return status, error, False

    def answer_for(decision) -> tuple[int, dict]:
        code = 202 if decision.outcome == "accepted" else 200
        return code, _accepted_body(article.id, article.uri, decision, settings)

    try:
        result = intake.accept_article(
            rt, celery, article, body, stored=intake.Stored(claim.version, claim.status),
            remember=(name, answer_for) if name else None,
        )
    except (StorageUnavailable, redis.RedisError) as exc:
        log.error("cannot accept %s v%s: %s", article.id, article.version, exc)
        metrics.ARTICLES.labels("unavailable").inc()
        abort(503, message="Storage is unavailable; nothing was accepted, retry later.", headers=UNAVAILABLE)
    decision = result.decision
    metrics.ARTICLES.labels(decision.outcome).inc()
    log.info("article %s v%s %s (%s)", article.id, article.version, decision.outcome, decision.status)
    return (*answer_for(decision), result.remembered)


def _error(code: int, status: str, message: str, errors: list | None = None) -> dict:
    body = {"code": code, "status": status, "message": message}
    if errors is not None:
        body["errors"] = errors
    return body


@blp.route("/v1/articles/<string:article_id>", methods=["GET"])
@blp.doc(summary="Where an article is in the pipeline", security=[{"bearer": []}])
@blp.response(200, ArticleStatusSchema)
@blp.alt_response(404, description="No such article")
def get_article(article_id: str):
    settings, rt, _ = _ctx()
    auth.require_token(settings)
    state = _load_state(rt, article_id)
    embargo = float(state.get("embargo") or 0)
    return {
        "id": article_id,
        "uri": state.get("uri"),
        "status": state.get("status"),
        "version": int(state["version"]),
        "published_version": int(state["published_version"]) if state.get("published_version") else None,
        "url": state.get("url") or None,
        "key": state.get("key") or None,
        "embargoed_until": embargo or None,
        "reason": state.get("reason") or None,
        "timeline": state["timeline"],
    }


@blp.route("/v1/articles/<string:article_id>", methods=["DELETE"])
@blp.doc(summary="Withdraw (unpublish) an article", security=[{"bearer": []}])
@blp.response(202, AcceptedSchema)
@blp.alt_response(404, description="No such article")
def delete_article(article_id: str):
    settings, rt, celery = _ctx()
    auth.require_token(settings)
    state = _load_state(rt, article_id)
    try:
        decision = intake.withdraw_article(rt, celery, article_id)
    except redis.RedisError:
        abort(503, message="Pressroom's state store is unavailable; retry later.", headers=UNAVAILABLE)
    return _accepted_body(article_id, state.get("uri"), decision, settings), 202


def _load_state(rt, article_id: str) -> dict:
    if not keys.ARTICLE_ID.match(article_id):
        abort(404, message=f"No article with id {article_id!r}.")
    try:
        state = rt.articles.get(article_id)
    except redis.RedisError:
        abort(503, message="Pressroom's state store is unavailable; retry later.", headers=UNAVAILABLE)
    if state is None:
        abort(404, message=f"No article with id {article_id!r}.")
    return state
