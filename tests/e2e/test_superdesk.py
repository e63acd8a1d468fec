"""End to end: a Superdesk HTTP Push of a Superdesk NINJS item becomes a page with its photo; a kill withdraws it."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from tests.conftest import article_status
from tests.e2e.test_lifecycle import page, page_exists, wait_status
from tests.ingest.test_superdesk import push, unique


class SuperdeskMedia(BaseHTTPRequestHandler):
    """Stands in for Superdesk's /api/upload/<media>/raw: a JPEG for every rendition."""

    paths: list[str] = []

    def do_GET(self):  # noqa: N802
        SuperdeskMedia.paths.append(self.path)
        buffer = io.BytesIO()
        Image.new("RGB", (900, 600), (200, 40, 40)).save(buffer, "JPEG")
        body = buffer.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def media_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SuperdeskMedia)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def superdesk_item(media_url: str) -> dict:
    doc = unique()
    for rendition in doc["associations"]["featuremedia"]["renditions"].values():
        rendition["href"] = rendition["href"].replace("http://localhost:5000", media_url)
        rendition["href"] = rendition["href"].replace("/raw?", f"-{doc['guid'][-10:]}/raw?")
    return doc


def test_superdesk_push_publishes_with_photo_and_a_kill_withdraws(api, workers, rt, media_server):
    doc = superdesk_item(media_server)
    answer = push(api, doc)
    assert answer.status_code == 202, answer.text
    aid = answer.json()["id"]
    published = wait_status(api, aid, "published", 1)
    html = page(rt, published["key"])
    assert "This is a test headline" in html
    assert "The story body" in html and "call helpline 999" in html
    assert '<p class="meta byline">joe</p>' in html
    assert "Sydney" in html
    assert "<figure" in html and "Foo picture" in html
    assert '<span class="credit">MICKEY MOUSE / Foo ltd.</span>' in html
    assert published["key"].startswith("2015/06/13/")  # firstpublished
    fetched = [p for p in SuperdeskMedia.paths if doc["guid"][-10:] in p]
    assert fetched and all("55b078b21d41c8e974d17ec5" in p for p in fetched)  # the original, only

    kill = {**doc, "version": "2", "pubstatus": "canceled", "body_html": "<p>This story has been killed.</p>"}
    answer = push(api, kill)
    assert answer.status_code == 202, answer.text
    wait_status(api, aid, "withdrawn")
    assert not page_exists(rt, published["key"])
    events = [e["event"] for e in article_status(api, aid)["timeline"]]
    assert events[0] == "accepted" and "published" in events
    late = push(api, {**doc, "headline": "A late copy of version 1"})  # other bytes: not a replay
    assert late.status_code == 200 and late.json()["outcome"] == "stale" and late.json()["version"] == 2
    assert article_status(api, aid)["status"] == "withdrawn"
