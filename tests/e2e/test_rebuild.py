"""`pressroom rebuild` batch-first on a stack of its own: every page once, with final lists, through crashes.

Its own redis-server (so the rebuild covers exactly the articles seeded here), moto's S3
server with fresh buckets, one real worker for the render and site pools; no notify
worker, so the article events the rebuild sends stay in the `notify` queue to be counted.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import lxml.html
import pytest

from services.ingest.articles.intake import accept_article
from services.render import lists
from services.render.related import RelatedIndex
from services.render.site_index import SiteIndex
from services.render.upload import UPLOADS
from shared import keys, tasknames
from shared.ninjs import load_article
from shared.runtime import Runtime
from shared.settings import Settings
from shared.storage import ensure_buckets
from tests.cli.test_commands import children_of
from tests.conftest import ROOT, make_env, sample, start_process, start_redis, stop_process, wait_for

THEMES = {
    "Shipping": "port freight containers vessel tanker canal harbour cargo dockworkers",
    "Elections": "ballot voters campaign polling parliament candidates turnout coalition",
    "Drought": "rainfall harvest farmers reservoirs irrigation crops wells water",
    "Vaccines": "clinic doses immunisation nurses outbreak measles ministry health",
    "Rail": "trains tracks signalling commuters timetable locomotive station freight",
}
ARTICLES = 230  # three chunks of at most 100


class NoBroker:
    def send_task(self, *args, **kwargs):
        raise ConnectionError("articles are seeded unqueued: the rebuild alone publishes them")


@pytest.fixture(scope="module")
def stack(s3_server):
    redis = start_redis()
    env = make_env(redis.url, s3_server.url)
    settings = Settings.from_env({**os.environ, **env})
    ensure_buckets(settings)
    worker = start_process(["worker", "render", "site", "--concurrency", "2"], env, "rebuild-worker")
    yield env, settings, worker
    stop_process(worker)
    redis.stop()


def story(number: int, theme: str, words: str, when: datetime) -> dict:
    doc = sample()
    doc.pop("associations")
    doc.update(
        uri=f"urn:rebuild-test:{uuid.uuid4().hex}", headline=f"{theme} story {number}: {words.split()[number % 8]}",
        slugline=f"{theme.lower()}-{number}", firstcreated=when.isoformat(), versioncreated=when.isoformat(),
        description_text=f"About {theme.lower()}, number {number}.",
        body_html="".join(f"<p>{' '.join(words.split()[(number + i) % 8:] + words.split()[:(number + i) % 8])} "
                          f"item{number}</p>" for i in range(3)),
    )
    doc["subject"] = [{"name": "World", "scheme": "section"}, {"name": theme}]
    doc["place"], doc["person"], doc["organisation"] = [], [], []
    return doc


def seed(settings: Settings, count: int) -> list[str]:
    rt = Runtime(settings)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    aids = []
    for i in range(count):
        theme = list(THEMES)[i % len(THEMES)]
        doc = story(i, theme, THEMES[theme], start + timedelta(minutes=7 * i))
        article = load_article(doc)
        accept_article(rt, NoBroker(), article, doc)
        aids.append(article.id)
    return aids


def rebuild_command(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pressroom.cli", "rebuild", *args, "--timeout", "240"],
                            env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def article_events(rt: Runtime) -> list[dict]:
    """The article events waiting in the notify queue (kombu's JSON envelope, base64 body)."""
    events = []
    for raw in rt.redis.lrange("notify", 0, -1):
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        if message["headers"]["task"] == tasknames.NOTIFY_ARTICLE_EVENT:
            events.append(kwargs["event"])
        elif message["headers"]["task"] == tasknames.NOTIFY_ARTICLE_EVENTS:
            events.extend(kwargs["events"])
    return events


def related_hrefs(html: str) -> list[str]:
    tree = lxml.html.fromstring(html)
    return [a.get("href") for a in tree.find_class("related")[0].iter("a")]


def test_a_killed_rebuild_continues_and_publishes_every_page_once_with_its_final_lists(stack):
    env, settings, worker = stack
    rt = Runtime(settings)
    aids = seed(settings, ARTICLES)
    started = time.time()

    # 1. the command is killed during the index phase; the workers carry on with what they hold
    first = rebuild_command(env, "--force")
    wait_for(lambda: rt.redis.get(keys.REBUILD_ACTIVE), timeout=60, interval=0.05, message="the run to be planned")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    run = rt.redis.get(keys.REBUILD_ACTIVE).decode()

    # 2. run again: it continues the same run; its render pool is killed while pages are being written
    second = rebuild_command(env)
    page_keys = {aid: None for aid in aids}

    def some_pages_written() -> bool:
        written = sum(1 for field in rt.redis.hkeys(UPLOADS) if field.decode().startswith("2024/"))
        return 0 < written < ARTICLES

    wait_for(some_pages_written, timeout=180, interval=0.02, message="the first pages of the rebuild")
    pool = children_of(worker.pid, direct=True)
    assert pool, "the worker has pool processes"
    for pid in pool:
        os.kill(pid, signal.SIGKILL)
    finished_at_kill = rt.redis.scard(keys.rebuild_run(run, "done"))
    out, err = second.communicate(timeout=240)
    assert second.returncode == 0, err
    assert f"continuing rebuild {run}" in err
    assert "rendering" in err and "ETA" in err  # the progress bar
    assert out.startswith(f"rebuilt {ARTICLES} articles") and f"published {ARTICLES}" in out
    assert re.search(r"; indexing [\d.]+s, rendering [\d.]+s\)", out)  # how long this command waited on each
    assert finished_at_kill < ARTICLES  # the kill landed while the run still had pages to write
    assert worker.poll() is None  # the worker replaced its pool
    assert rt.redis.get(keys.REBUILD_ACTIVE) is None  # the run is over: the next rebuild starts afresh

    # every article published exactly once: one timeline event, one upload of its page, at least one event sent
    for aid in aids:
        state = rt.articles.get(aid)
        assert state["status"] == "published" and state["published_version"] == "1"
        assert state["rebuild"] == run, f"{aid} left to the per-article path"  # the killed chunks were redone
        assert [e["event"] for e in state["timeline"] if e["at"] >= started].count("published") == 1, aid
        page_keys[aid] = state["key"]
        assert int(rt.redis.hget(UPLOADS, state["key"])) == 1, f"{state['key']} written more than once"
    assert {e["id"] for e in article_events(rt) if e["type"] == "article.published"} == set(aids)

    # each page shows the related list the complete index gives, not one from a partial corpus
    related = RelatedIndex(rt.redis)
    index = SiteIndex(rt.redis)
    for aid in aids[::7]:
        expected = [c["url"] for c in index.cards([i for i in related.query(aid, lists.LIST_SIZE * 2)
                                                   if i != aid])][:lists.LIST_SIZE]
        html = rt.site.get(page_keys[aid]).body.decode()
        assert expected and related_hrefs(html) == expected, aid
        assert rt.articles.get(aid)["url"] not in related_hrefs(html)

    # the site build ran as part of the run: the home page lists the newest twenty, every theme has its page
    home = rt.site.get("index.html").body.decode()
    newest = sorted(aids, key=lambda a: index.cards([a])[0]["published"])[-20:]
    assert all(index.cards([a])[0]["url"] in home for a in newest)
    for theme in THEMES:
        topic = rt.site.get(f"topic/{keys.slugify(theme)}/index.html").body.decode()
        assert f"{theme} story" in topic


def test_a_rebuild_hands_withdrawals_and_missing_documents_to_the_per_article_path(stack):
    env, settings, worker = stack
    rt = Runtime(settings)
    doc = story(1000, "Rail", THEMES["Rail"], datetime(2024, 6, 1, tzinfo=UTC))
    gone = story(1001, "Rail", THEMES["Rail"], datetime(2024, 6, 2, tzinfo=UTC))
    broken = story(1002, "Rail", THEMES["Rail"], datetime(2024, 6, 3, tzinfo=UTC))
    ids = []
    for d in (doc, gone, broken):
        article = load_article(d)
        accept_article(rt, NoBroker(), article, d)
        ids.append(article.id)
    rt.articles.request_withdraw(ids[1])
    rt.data.delete(rt.articles.get(ids[2])["doc_key"])
    result = subprocess.run([sys.executable, "-m", "pressroom.cli", "rebuild", "--timeout", "240"],
                            env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "withdrawn 1" in result.stdout and "failed 1" in result.stdout
    assert rt.articles.get(ids[0])["status"] == "published"
    assert rt.articles.get(ids[1])["status"] == "withdrawn"
    failed = rt.articles.get(ids[2])
    assert failed["status"] == "failed" and failed["doc_key"] in failed["reason"]
