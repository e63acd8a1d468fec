"""A render process killed mid-task loses nothing: the task is requeued and the article published."""

import io
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from PIL import Image

from tests.cli.test_commands import children_of
from tests.conftest import article_status, signed, unique_article, wait_for


class SlowPhoto(BaseHTTPRequestHandler):
    """Holds the first request until released, so the render process is busy when it is killed."""

    requests: list[str] = []
    release = threading.Event()

    def do_GET(self):  # noqa: N802
        SlowPhoto.requests.append(self.path)
        if len(SlowPhoto.requests) == 1:
            SlowPhoto.release.wait(30)
        buffer = io.BytesIO()
        Image.new("RGB", (400, 225), (10, 120, 60)).save(buffer, "JPEG")
        body = buffer.getvalue()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_killed_render_process_is_requeued_and_the_article_published(api, workers, rt):
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowPhoto)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        doc = unique_article()
        doc["associations"]["featuremedia"]["renditions"]["original"]["href"] = (
            f"http://127.0.0.1:{server.server_port}/photo-{doc['uri'][-10:]}.jpg"
        )
        body = json.dumps(doc).encode()
        aid = requests.post(f"{api}/v1/articles", data=body, headers=signed(body), timeout=10).json()["id"]
        wait_for(lambda: SlowPhoto.requests, timeout=60, message="the render process to fetch the photo")
        worker = workers[0]
        pool = sorted(children_of(worker.pid))
        assert pool, "the worker has pool processes"
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        SlowPhoto.release.set()
        status = wait_for(
            lambda: (s := article_status(api, aid))["status"] == "published" and s,
            timeout=90, message="the requeued task to publish the article",
        )
        assert len(SlowPhoto.requests) >= 2  # fetched again by the task's second run
        assert "<figure" in rt.site.get(status["key"]).body.decode()
        assert worker.poll() is None  # the worker itself survived and replaced its pool
    finally:
        server.shutdown()
