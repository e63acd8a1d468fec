"""The local site preview serves the site bucket like S3 website hosting (real moto S3)."""

from werkzeug.test import Client

from pressroom.site_server import create_site_app


def test_clean_urls_files_redirects_and_404(settings, rt):
    rt.site.put("preview/story/index.html", b"<h1>Story</h1>", "text/html; charset=utf-8")
    rt.site.put("preview/feed.xml", b"<rss/>", "application/rss+xml; charset=utf-8")
    client = Client(create_site_app(settings))
    page = client.get("/preview/story/")
    assert page.status_code == 200 and page.data == b"<h1>Story</h1>"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert client.get("/preview/feed.xml").headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    moved = client.get("/preview/story")
    assert moved.status_code == 301 and moved.headers["Location"] == "/preview/story/"
    assert client.get("/preview/missing.xml").status_code == 404
