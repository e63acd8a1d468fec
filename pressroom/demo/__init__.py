"""The demo site: a few dozen articles around the seed article, published the way a newsroom would.

A first `pressroom run` (or `pressroom demo` at any time) publishes `articles/*.json`
through the real API, signed like a newsroom's webhook, so every stage runs for real: the
photos are drawn here, put in the site bucket and fetched back over HTTP by the photo
pipeline (`demo-photo:NN.jpg` in a document names one), page views go to the beacon
endpoint, and the seed article is published last so its page opens with all three lists
filled. Nothing here writes around the pipeline but the photo originals.
"""

from __future__ import annotations

import io
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.commands import article_post_headers
from shared.settings import Settings

ARTICLES = Path(__file__).resolve().parent / "articles"
SEED = "00-seed-article.json"
PHOTO_PREFIX = "demo-photo:"
PHOTO_KEY = "demo/photos/{name}"
# page views the beacon gets per article file, so the Popular list has an order (the limit is 60 a minute)
VIEWS = {"03": 14, "12": 11, "17": 9, "21": 7, "26": 5, "08": 4}


class DemoError(RuntimeError):
    """The API refused a demo article, or the pages did not appear in time."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the API's HTTP status, when it answered


@dataclass(frozen=True)
class Loaded:
    articles: int
    seed_url: str


def documents(photo_base: str) -> list[tuple[str, dict]]:
    """(file name, NINJS document) of every demo article, the seed last, photo links made absolute."""
    files = sorted(p for p in ARTICLES.glob("*.json"))
    ordered = [p for p in files if p.name != SEED] + [p for p in files if p.name == SEED]
    out = []
    for path in ordered:
        doc = json.loads(path.read_text(encoding="utf-8"))
        for rendition, name in _demo_photos(doc):
            rendition["href"] = f"{photo_base}/{PHOTO_KEY.format(name=name)}"
        out.append((path.name, doc))
    return out


def photo_names() -> list[str]:
    """Every photo the demo documents name (`demo-photo:NN.jpg`)."""
    docs = (json.loads(p.read_text(encoding="utf-8")) for p in ARTICLES.glob("*.json"))
    return sorted({name for doc in docs for _, name in _demo_photos(doc)})


def _demo_photos(doc: dict):
    """(rendition, photo name) of each rendition of `doc` that links a demo photo."""
    for media in (doc.get("associations") or {}).values():
        for rendition in (media.get("renditions") or {}).values():
            href = rendition.get("href", "")
            if href.startswith(PHOTO_PREFIX):
                yield rendition, href[len(PHOTO_PREFIX):]


def draw_photo(name: str, width: int = 1600, height: int = 900) -> bytes:
    """A landscape drawn from the name (sky, sun, hills, a skyline): the same picture every time."""
    from PIL import Image, ImageDraw

    rng = random.Random(name)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    top = (rng.randrange(40, 120), rng.randrange(80, 160), rng.randrange(150, 230))
    bottom = (rng.randrange(200, 255), rng.randrange(150, 220), rng.randrange(100, 180))
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    sun = (rng.randrange(width // 5, 4 * width // 5), rng.randrange(height // 8, height // 3))
    radius = rng.randrange(50, 110)
    draw.ellipse([sun[0] - radius, sun[1] - radius, sun[0] + radius, sun[1] + radius], fill=(255, 236, 180))
    for layer in range(3):
        base = int(height * (0.55 + 0.12 * layer))
        shade = tuple(max(0, c - 45 * (layer + 1)) for c in (90, 130, 90))
        points = [(0, height)]
        for x in range(0, width + 100, 100):
            points.append((x, base - rng.randrange(0, 120)))
        points.append((width, height))
        draw.polygon(points, fill=shade)
    x = rng.randrange(0, width // 3)
    while x < width:
        w, h = rng.randrange(30, 90), rng.randrange(60, 260)
        draw.rectangle([x, height - h, x + w, height], fill=(40 + rng.randrange(40),) * 3)
        x += w + rng.randrange(5, 40)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class _Api:
    def __init__(self, settings: Settings, base: str) -> None:
        self.settings, self.base = settings, base.rstrip("/")

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> dict:
        request = urllib.request.Request(self.base + path, data=body, method=method,  # noqa: S310 - our own API
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise DemoError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')[:300]}",
                            exc.code) from None
        except urllib.error.URLError as exc:
            raise DemoError(f"cannot reach the API at {self.base}: {exc.reason}") from None
        return json.loads(raw) if raw else {}

    def post_article(self, doc: dict) -> str:
        body = json.dumps(doc).encode()
        headers = article_post_headers(self.settings, body)
        if headers is None:
            raise DemoError("set PRESSROOM_WEBHOOK_SECRETS or PRESSROOM_API_TOKEN to publish the demo")
        return self.call("POST", "/v1/articles", body, headers)["id"]

    def status(self, aid: str) -> dict:
        return self.call("GET", f"/v1/articles/{aid}", headers={"Authorization": f"Bearer {self.settings.api_token}"})

    def wait_published(self, ids: list[str], timeout: float) -> dict[str, dict]:
        deadline, done = time.monotonic() + timeout, {}
        while len(done) < len(ids):
            for aid in ids:
                if aid not in done and (state := self.status(aid)).get("status") in ("published", "failed"):
                    done[aid] = state
            if len(done) < len(ids):
                if time.monotonic() > deadline:
                    raise DemoError(f"{len(ids) - len(done)} demo articles not published after {timeout:g}s "
                                    "(are the render workers running?)")
                time.sleep(0.3)
        return done


def load(settings: Settings, api_url: str | None = None, say: Callable[[str], None] = print,
         timeout: float = 180) -> Loaded:
    """Publish the demo site through the API at `api_url` (default: the public API URL); returns the seed's URL."""
    from shared import tasknames
    from shared.celery_app import create_celery
    from shared.runtime import Runtime

    rt = Runtime(settings)
    for name in photo_names():
        rt.site.put(PHOTO_KEY.format(name=name), draw_photo(name), "image/jpeg", cache_control="public, max-age=86400")
    api = _Api(settings, api_url or settings.public_api_url)
    docs = documents(settings.site_url)
    *others, (_, seed) = docs
    say(f"pressroom: publishing the demo site ({len(docs)} articles)…")
    ids = {name: api.post_article(doc) for name, doc in others}
    states = api.wait_published(list(ids.values()), timeout)
    try:
        for name, count in VIEWS.items():
            aid = next((i for n, i in ids.items() if n.startswith(f"{name}-")), None)
            for _ in range(count if aid else 0):
                api.call("POST", "/v1/events/pageview", json.dumps({"id": aid}).encode())
    except DemoError as exc:
        if exc.status != 429:
            raise
        say("pressroom: the page-view limit was reached (the demo ran a minute ago?); Popular keeps what it has")
    app = create_celery(settings)
    try:
        app.send_task(tasknames.SCHEDULER_SITE_TICK)  # popular.json now, not at the next tick
    finally:
        app.close()
    seed_id = api.post_article(seed)
    states |= api.wait_published([seed_id], timeout)
    failed = [aid for aid, state in states.items() if state.get("status") == "failed"]
    if failed:
        raise DemoError(f"demo articles failed to publish: {', '.join(failed)} (see `pressroom status`)")
    return Loaded(len(docs), states[seed_id]["url"])
