"""Reader-facing signals and editor curation: page views (for Popular) and collections."""

from __future__ import annotations

import json
import time

import redis
from flask import current_app, request
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError

from services.ingest import auth
from services.ingest.site.schemas import CollectionOutSchema, CollectionSchema, PageviewSchema
from shared import keys, tasknames
from shared.ninjs import error_list
from shared.runtime import runtime_for

blp = Blueprint("site", __name__, description="Page views and editor-curated collections")

PAGEVIEWS_PER_MINUTE = 60
CORS = {"Access-Control-Allow-Origin": "*"}


def _ctx():
    ext = current_app.extensions["pressroom"]
    return ext["settings"], runtime_for(ext["settings"]), ext["celery"]


@blp.route("/v1/events/pageview", methods=["POST"])
@blp.doc(
    summary="Count one page view (the article page's beacon; no cookies, rate-limited per client)",
    requestBody={"content": {"application/json": {"schema": PageviewSchema}, "text/plain": {"schema": PageviewSchema}}},
)
@blp.response(204, description="Counted (or silently ignored for an unpublished article)")
@blp.alt_response(422, description="Not an article id")
@blp.alt_response(429, description="Too many page views from this client")
def pageview():
    """sendBeacon posts text/plain, so the body is parsed as JSON whatever its type."""
    _, rt, _ = _ctx()
    try:
        data = PageviewSchema().load(json.loads(request.get_data(cache=False) or b"null"))
    except (ValueError, ValidationError) as exc:
        errors = error_list(exc.messages) if isinstance(exc, ValidationError) else [{"field": "$", "message": str(exc)}]
        abort(422, message="Send {\"id\": \"<article id>\"}.", errors=errors, headers=CORS)
    window = int(time.time() // 60)
    limit_key = keys.pageview_limit(request.remote_addr or "unknown", window)
    try:
        pipe = rt.redis.pipeline()
        pipe.incr(limit_key)
        pipe.expire(limit_key, 120)
        count, _ = pipe.execute()
        if count > PAGEVIEWS_PER_MINUTE:
            abort(429, message="Too many page views; slow down.", headers={**CORS, "Retry-After": "60"})
        if rt.redis.hget(keys.article_state(data["id"]), "status") == b"published":
            rt.redis.zincrby(keys.POPULAR, 1, data["id"])
    except redis.RedisError:
        abort(503, message="Pressroom's state store is unavailable.", headers=CORS)
    return "", 204, CORS


@blp.route("/v1/collections/<string:name>", methods=["PUT"])
@blp.doc(
    summary="Set the ordered list of a collection (e.g. editors-choice)",
    security=[{"bearer": []}],
    requestBody={"required": True, "content": {"application/json": {"schema": CollectionSchema}}},
)
@blp.response(200, CollectionOutSchema)
@blp.alt_response(422, description="Not a list of known articles")
def put_collection(name: str):
    settings, rt, celery = _ctx()
    auth.require_token(settings)
    try:
        body = CollectionSchema().load(request.get_json(silent=True) or {})
    except ValidationError as exc:
        abort(422, message="Send {\"items\": [article ids or uris]}.", errors=error_list(exc.messages))
    slug = keys.slugify(name)
    ids = []
    for item in body["items"]:
        aid = item if keys.ARTICLE_ID.match(item) else keys.article_id(item)
        if aid not in ids:
            ids.append(aid)
    unknown = [i for i in ids if not rt.redis.exists(keys.article_state(i))]
    if unknown:
        abort(422, message="Unknown articles in the list.",
              errors=[{"field": "items", "message": f"no article {i}"} for i in unknown])
    pipe = rt.redis.pipeline()
    pipe.delete(keys.collection(slug))
    if ids:
        pipe.rpush(keys.collection(slug), *ids)
    pipe.execute()
    celery.send_task(tasknames.RENDER_COLLECTION, args=[slug])
    return {"name": slug, "items": ids}


@blp.route("/v1/collections/<string:name>", methods=["GET"])
@blp.doc(summary="The curated order of a collection", security=[{"bearer": []}])
@blp.response(200, CollectionOutSchema)
def get_collection(name: str):
    settings, rt, _ = _ctx()
    auth.require_token(settings)
    slug = keys.slugify(name)
    return {"name": slug, "items": [i.decode() for i in rt.redis.lrange(keys.collection(slug), 0, -1)]}
