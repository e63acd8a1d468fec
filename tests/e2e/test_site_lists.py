"""Related, editor's choice and popular lists on real workers, and the rebuild command."""

import json
import subprocess
import sys
import uuid

import requests

from shared import keys, tasknames
from shared.celery_app import create_celery
from tests.conftest import ROOT, article_status, auth_headers, sample, unique_article
from tests.e2e.test_site import get, post, published, wait_page

SECOND_STORY = (
    "<p>Azerbaijan has agreed to buy Israeli drones and air defence systems, officials in Baku said, as defence ties "
    "between the two countries deepen after the visit of Israeli Defence Minister Avigdor Liberman.</p>"
    "<p>According to the Stockholm International Peace Research Institute (SIPRI), Israel was Azerbaijan's largest "
    "arms exporter for the last two years, selling the country USD 385 million worth of arms.</p>"
    "<p>Analysts in Tbilisi expect Georgia to seek similar training agreements for its reservist service.</p>"
)


def story(marker: str, headline: str, body: str) -> dict:
    """A story that shares a made-up place name only with its sibling, so no other test's article competes."""
    doc = unique_article(headline=f"{headline} in {marker}", body_html=body.replace("Baku", marker))
    doc["place"] = [{"name": marker}]
    return doc


def related_story(marker: str) -> dict:
    doc = story(marker, "Azerbaijan to buy Israeli drones as defence ties deepen", SECOND_STORY + f"<p>{marker}</p>")
    doc["description_text"] = "Drone and air defence purchases follow the Israeli defence minister's visit."
    doc["slugline"] = f"azerbaijan-drones-{uuid.uuid4().hex[:6]}"
    return doc


def related_links(rt, key) -> list[str]:
    import lxml.html

    tree = lxml.html.fromstring(get(rt, key))
    return [a.get("href") for a in tree.find_class("related")[0].iter("a")]


def test_related_lists_show_each_other_and_a_withdrawal_leaves_them(api, workers, rt):
    marker = f"Zq{uuid.uuid4().hex[:8]}"
    first_doc = story(marker, "Israeli Defence Minister visits Georgia and Azerbaijan", sample()["body_html"])
    first = published(api, post(api, first_doc))
    second_id = post(api, related_story(marker))
    second = published(api, second_id)
    assert first["url"] in related_links(rt, second["key"])
    wait_page(rt, first["key"], lambda html: second["url"] in html, "the fan-out re-render of the first page")
    requests.delete(f"{api}/v1/articles/{second_id}", headers=auth_headers(), timeout=10)
    wait_page(rt, first["key"], lambda html: second["url"] not in related_links(rt, first["key"]),
              "the withdrawn article to leave the related list")


def test_editors_choice_from_ninjs_tag_and_from_the_curated_order(api, workers, rt):
    tagged = json.loads((ROOT / "tests" / "samples" / "editors-choice-article.ninjs.json").read_text())
    tagged["uri"] += uuid.uuid4().hex[:8]
    tagged_status = published(api, post(api, tagged))
    wait_page(rt, "collection/editors-choice/index.html", lambda html: tagged_status["url"] in html,
              "the collection page")
    other = published(api, post(api, unique_article()))
    answer = requests.put(f"{api}/v1/collections/editors-choice", headers=auth_headers(), timeout=10,
                          json={"items": [other["id"], tagged_status["id"]]})
    assert answer.status_code == 200
    choice = wait_page(rt, "lists/editors-choice.json",
                       lambda body: [i["id"] for i in json.loads(body)["items"]][:2] == [other["id"],
                                                                                           tagged_status["id"]],
                       "the curated editor's choice JSON")
    assert choice
    fresh = published(api, post(api, unique_article()))
    html = get(rt, fresh["key"])
    assert html.index(other["url"]) < html.index(tagged_status["url"])


def test_popular_follows_page_views(api, workers, rt, settings):
    viewed = published(api, post(api, unique_article()))
    for _ in range(50):
        requests.post(f"{api}/v1/events/pageview", data=json.dumps({"id": viewed["id"]}), timeout=5)
    assert rt.redis.zscore(keys.POPULAR, viewed["id"]) >= 50
    create_celery(settings).send_task(tasknames.SCHEDULER_SITE_TICK)
    wait_page(rt, "lists/popular.json", lambda body: [i["id"] for i in json.loads(body)["items"]][:1] == [viewed["id"]],
              "popular.json to lead with the viewed article")
    assert rt.redis.zscore(keys.POPULAR, viewed["id"]) < 50  # decayed by the tick


def test_rebuild_rerenders_every_article_with_a_summary(api, workers, rt, stack_env):
    aid = post(api, sample() | {"uri": f"urn:rebuild:{uuid.uuid4().hex}"})
    status = published(api, aid)
    rt.site.delete(status["key"])  # lost outside Pressroom: --force checks the bucket, not the upload cache
    result = subprocess.run([sys.executable, "-m", "pressroom.cli", "rebuild", "--force", "--timeout", "120"],
                            env={**__import__("os").environ, **stack_env}, capture_output=True, text=True,
                            timeout=180, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rebuilt ") and "published" in result.stdout
    assert "articles" in result.stderr and "/s" in result.stderr  # the progress bar
    assert any(e["event"] == "published" for e in article_status(api, aid)["timeline"][-3:])
    assert "Israeli Defence Minister visits Georgia" in get(rt, status["key"])
