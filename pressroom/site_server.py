"""A preview server for the site bucket, so `make run` can be browsed like S3 website hosting.

`/a/b/` serves `a/b/index.html`; anything else serves the object of that key. Local use
only; in production a CDN or S3 website hosting serves the bucket.
"""

from __future__ import annotations

import mimetypes

from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

from shared.logs import configure_logging
from shared.settings import Settings
from shared.storage import S3Storage, StorageUnavailable, s3_client


def create_site_app(settings: Settings):
    storage = S3Storage(s3_client(settings), settings.site_bucket)

    @Request.application
    def app(request: Request) -> Response:
        path = request.path.lstrip("/")
        key = f"{path}index.html" if not path or path.endswith("/") else path
        try:
            obj = storage.get(key)
        except FileNotFoundError:
            if not path.endswith("/") and "." not in path.rsplit("/", 1)[-1]:
                return Response(status=301, headers={"Location": f"/{path}/"})
            return Response("<h1>Not found</h1>", status=404, mimetype="text/html")
        except StorageUnavailable:
            return Response("storage unavailable", status=503)
        content_type = obj.content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        return Response(obj.body, content_type=content_type)

    return app


def serve(settings: Settings) -> None:
    configure_logging(settings)
    run_simple("127.0.0.1", settings.site_port, create_site_app(settings), threaded=True)
