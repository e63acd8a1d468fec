"""One JSON shape for every error: {code, status, message, errors?}."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

log = logging.getLogger("pressroom.ingest")


def error_payload(error: HTTPException):
    data = getattr(error, "data", None) or {}
    payload = {
        "code": error.code,
        "status": error.name,
        "message": data.get("message") or error.description,
    }
    if "errors" in data:
        payload["errors"] = data["errors"]
    headers = dict(data.get("headers") or {})
    return payload, error.code, headers


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        payload, code, headers = error_payload(error)
        response = jsonify(payload)
        response.headers.update(headers)
        return response, code

    @app.errorhandler(RecursionError)
    def too_deep(error: RecursionError):
        """JSON nested past Python's recursion limit, from any parser (ours, Flask's, webargs')."""
        payload, code, _ = error_payload(BadRequest("The JSON body is nested too deeply."))
        return jsonify(payload), code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error")
        payload, code, _ = error_payload(InternalServerError())
        return jsonify(payload), code
