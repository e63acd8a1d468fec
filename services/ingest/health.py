"""Liveness and readiness: /healthz says the process serves, /readyz that Redis and S3 answer."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from shared.runtime import runtime_for

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    rt = runtime_for(current_app.extensions["pressroom"]["settings"])
    checks: dict[str, str] = {}
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    for name, store in (("site_bucket", rt.site), ("data_bucket", rt.data)):
        try:
            store.check()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), (200 if ready else 503)
