"""The demo site: what a first `pressroom run` publishes around the seed page, and that it does so once."""

import io
import json
import re

import lxml.html
import requests
from PIL import Image

from pressroom import demo
from pressroom.embedded import DEMO_MARK
from shared.commands import RUNNING_STACK
from shared.ninjs import load_article
from tests.browser import pixels_near, screenshot, srcset_urls
from tests.cli.test_commands import Run, run_cli
from tests.conftest import ROOT

SUN = (255, 236, 180)  # every demo photo has its sun drawn in this colour, which the page itself never uses
RELATED_TO_SEED = {f"{n:02d}" for n in range(1, 9)}


def demo_files() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in demo.ARTICLES.glob("*.json")}


def test_every_demo_document_is_an_article_and_its_photos_are_drawn_here():
    docs = demo.documents("http://127.0.0.1:9")
    assert docs[-1][0] == demo.SEED and len(docs) == len(demo_files()) >= 25
    hrefs = []
    for _, doc in docs:
        article = load_article(doc)
        if article.photo:
            hrefs.append(article.photo.href)
    assert hrefs and all(h.startswith("http://127.0.0.1:9/demo/photos/") and h.endswith(".jpg") for h in hrefs)
    assert {h.rsplit("/", 1)[1] for h in hrefs} == set(demo.photo_names())
    assert len({doc["uri"] for _, doc in docs}) == len(docs)
    photo = demo.draw_photo("00.jpg")
    with Image.open(io.BytesIO(photo)) as image:
        assert image.format == "JPEG" and image.size == (1600, 900)
    assert photo == demo.draw_photo("00.jpg") != demo.draw_photo("01.jpg")  # the same picture every time


def test_a_first_run_publishes_the_demo_site_once_with_the_seed_page_complete(tmp_path):
    state = tmp_path / "state"
    files = demo_files()
    headlines = {doc["headline"]: name[:2] for name, doc in files.items()}
    media = files[demo.SEED]["associations"]["featuremedia"]
    first = Run(state, demo=True)
    try:
        banner = first.wait_for_banner()
        url = re.search(r"The demo site is published: open (\S+)", banner).group(1)
        assert "pressroom post tests/samples/editors-choice-article.ninjs.json" in banner  # the seed is up already
        page = requests.get(url, timeout=10)
        assert page.status_code == 200
        tree = lxml.html.fromstring(page.text)
        assert tree.findtext(".//h1").strip() == files[demo.SEED]["headline"]
        img = tree.find(".//figure//img")
        assert requests.get(img.get("src"), timeout=10).headers["Content-Type"] == "image/jpeg"
        assert tree.findtext(".//figcaption").strip() == media["description_text"]
        assert tree.findtext(".//figure//span[@class='credit']") == media["byline"]
        lists = {cls: [a.text_content() for a in tree.find_class(cls)[0].iter("a")]
                 for cls in ("related", "editors-choice", "popular")}
        assert [len(items) for items in lists.values()] == [5, 5, 5]
        assert {headlines[h] for h in lists["related"]} <= RELATED_TO_SEED  # the South Caucasus stories
        assert headlines[lists["popular"][0]] == "03"  # the most viewed (pressroom.demo.VIEWS)
        shot = ROOT / "test-artifacts" / "screenshots" / "demo-seed.png"
        chosen = screenshot(url, shot, tmp_path / "chromium")
        assert chosen in srcset_urls(img) | srcset_urls(tree.find(".//figure//source"))  # one of its renditions
        assert pixels_near(shot, SUN) > 800  # the photo itself, drawn on the page

        home = lxml.html.fromstring(requests.get(f"http://127.0.0.1:{first.site_port}/", timeout=10).text)
        cards = home.findall(".//li[@class='card']")
        assert len(cards) == 20 and len(home.findall(".//li[@class='card']//img[@class='thumb']")) >= 10
        business = requests.get(f"http://127.0.0.1:{first.site_port}/section/business/", timeout=10)
        assert business.status_code == 200
        merger = files["11-nordic-lenders-agree-merger.json"]["headline"]
        assert merger in lxml.html.fromstring(business.text).text_content()
    finally:
        assert first.stop() == 0
    assert (state / DEMO_MARK).read_text().strip() == url

    second = Run(state, demo=True)
    try:
        banner = second.wait_for_banner()
        assert "publishing the demo site" not in second.output() and "demo site is published" not in banner
        path = url.split("/", 3)[3]
        assert requests.get(f"http://127.0.0.1:{second.site_port}/{path}", timeout=10).status_code == 200
        assert (state / RUNNING_STACK).stat().st_mode & 0o777 == 0o600  # it holds the stack's keys
        # other commands find the running stack through the state dir alone, as a user's would
        again = run_cli(["demo"], {"PRESSROOM_STATE_DIR": str(state)}, timeout=240)
        assert again.returncode == 0, again.stderr
        assert f"demo site published: {len(files)} articles; the seed article is at {url}" in again.stdout
        status = run_cli(["status"], {"PRESSROOM_STATE_DIR": str(state)})
        assert status.returncode == 0, status.stderr
        assert "published" in status.stdout
    finally:
        assert second.stop() == 0
    assert not (state / RUNNING_STACK).exists()
