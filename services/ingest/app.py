"""Flask application factory for the ingest API (served by gunicorn: `pressroom ingest`)."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from services.ingest import errors, health, metrics
from services.ingest.articles.resources import blp as articles_blp
from services.ingest.site.resources import blp as site_blp
from services.ingest.subscriptions.links import blp as subscription_links_blp
from services.ingest.subscriptions.resources import blp as subscriptions_blp
from shared.celery_app import create_celery
from shared.ninjs import NinjsArticle
from shared.runtime import runtime_for
from shared.settings import Settings


class PressroomApi(Api):
    def handle_http_exception(self, error):
        return errors.error_payload(error)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("pressroom.ingest")
    app.config.update(
        API_TITLE="Pressroom",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.extensions["pressroom"] = {
        "settings": settings,
        "celery": create_celery(settings),
    }
    api = PressroomApi(
        app,
        spec_kwargs={
            "info": {"description": "Article webhook, status, subscriptions, health and metrics."},
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "standardWebhooks": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "webhook-signature",
                        "description": "Standard Webhooks signature with webhook-id and webhook-timestamp",
                    },
                    "superdesk": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "x-superdesk-signature",
                        "description": "Superdesk HTTP Push: sha1=<hex HMAC-SHA1 of the body>, see docs/superdesk.md",
                    },
                }
            },
        },
    )
    api.spec.components.schema("NinjsArticle", schema=NinjsArticle)
    api.register_blueprint(articles_blp)
    api.register_blueprint(site_blp)
    api.register_blueprint(subscriptions_blp)
    api.register_blueprint(subscription_links_blp)
    app.register_blueprint(health.bp)
    metrics.init_app(app)
    errors.init_app(app)
    return app


def runtime(app: Flask):
    return runtime_for(app.extensions["pressroom"]["settings"])
