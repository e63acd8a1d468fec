"""Uploads: content types, unchanged bytes skipped, CDN invalidation (moto's CloudFront over HTTP)."""

import uuid
from dataclasses import replace

import boto3

from services.render.upload import ETAGS, UPLOADS, BatchUploader, Uploader, cdn_paths, content_type_for
from shared.runtime import Runtime
from shared.storage import StorageUnavailable


def test_content_types_by_name():
    assert content_type_for("a/b/index.html") == "text/html; charset=utf-8"
    assert content_type_for("topic/x/feed.xml") == "application/rss+xml; charset=utf-8"
    assert content_type_for("atom.xml") == "application/atom+xml; charset=utf-8"
    assert content_type_for("sitemap.xml") == "application/xml; charset=utf-8"
    assert content_type_for("robots.txt") == "text/plain; charset=utf-8"
    assert content_type_for("lists/popular.json") == "application/json"


def test_cdn_paths_cover_the_clean_url():
    assert cdn_paths(["2018/09/13/x/index.html", "feed.xml"]) == ["/2018/09/13/x/", "/2018/09/13/x/index.html",
                                                                   "/feed.xml"]


def distribution(endpoint: str) -> str:
    client = boto3.client("cloudfront", endpoint_url=endpoint)
    origin = {"Id": "site", "DomainName": "site.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}
    config = {
        "CallerReference": uuid.uuid4().hex, "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "allow-all", "MinTTL": 0,
                                 "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}}},
    }
    return client.create_distribution(DistributionConfig=config)["Distribution"]["Id"]


def test_changed_paths_are_invalidated_once_per_batch(settings, s3_server):
    dist = distribution(s3_server.url)
    rt = Runtime(replace(settings, cloudfront_distribution_id=dist, cloudfront_endpoint_url=s3_server.url))
    uploader = Uploader(rt)
    key = f"cdn-test/{uuid.uuid4().hex}/index.html"
    assert uploader.put(key, "<p>one</p>")
    assert not uploader.put(key, "<p>one</p>")
    assert uploader.flush() == [key]
    client = boto3.client("cloudfront", endpoint_url=s3_server.url)
    invalidations = client.list_invalidations(DistributionId=dist)["InvalidationList"]["Items"]
    assert len(invalidations) == 1
    batch = client.get_invalidation(DistributionId=dist, Id=invalidations[0]["Id"])["Invalidation"]
    paths = batch["InvalidationBatch"]["Paths"]["Items"]
    assert sorted(paths) == sorted(["/" + key, "/" + key.removesuffix("index.html")])
    assert uploader.flush() == []


def test_a_correction_and_a_withdrawal_invalidate_the_article_page(settings, s3_server):
    from services.render import publish
    from shared.ninjs import load_article
    from tests.conftest import unique_article
    from tests.render.test_publish import Recorder, accept

    dist = distribution(s3_server.url)
    rt = Runtime(replace(settings, cloudfront_distribution_id=dist, cloudfront_endpoint_url=s3_server.url))
    doc = unique_article()
    article = accept(rt, doc)
    publish.reconcile(rt, article.id, 1, Recorder())
    accept(rt, {**doc, "version": "2", "headline": "Corrected"})
    publish.reconcile(rt, article.id, 2, Recorder())
    rt.articles.request_withdraw(article.id)
    publish.reconcile(rt, article.id, 2, Recorder())
    client = boto3.client("cloudfront", endpoint_url=s3_server.url)
    items = client.list_invalidations(DistributionId=dist)["InvalidationList"]["Items"]
    page = "/" + rt.articles.get(article.id)["key"].removesuffix("index.html")
    paths = [
        client.get_invalidation(DistributionId=dist, Id=i["Id"])["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]
        for i in items
    ]
    assert len(paths) == 3 and all(page in p for p in paths)
    assert load_article(doc).id == article.id


def test_batch_uploads_write_changed_objects_concurrently_and_keep_their_marks(rt):
    prefix = f"test/batch-{uuid.uuid4().hex[:8]}"
    Uploader(rt).put(f"{prefix}/same.html", "<p>same</p>")
    Uploader(rt).put(f"{prefix}/gone.html", "<p>gone</p>")
    uploader = BatchUploader(rt, threads=4, batch=10)
    try:
        for i in range(25):  # two automatic commits of 10, then 5 at flush
            uploader.put(f"{prefix}/{i}/index.html", f"<p>{i}</p>")
        uploader.put(f"{prefix}/same.html", "<p>same</p>")
        uploader.put(f"{prefix}/later.html", "<p>first</p>")
        uploader.put(f"{prefix}/later.html", "<p>last</p>")  # the last operation on a key wins
        uploader.delete(f"{prefix}/gone.html")
        changed = uploader.flush()
    finally:
        uploader.close()
    assert f"{prefix}/same.html" not in changed  # unchanged bytes: no request
    assert len(changed) == 27
    assert rt.site.get(f"{prefix}/24/index.html").body == b"<p>24</p>"
    assert rt.site.get(f"{prefix}/24/index.html").content_type == "text/html; charset=utf-8"
    assert rt.site.get(f"{prefix}/later.html").body == b"<p>last</p>"
    assert int(rt.redis.hget(UPLOADS, f"{prefix}/later.html")) == 1
    assert rt.redis.hget(ETAGS, f"{prefix}/gone.html") is None
    try:
        rt.site.get(f"{prefix}/gone.html")
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("the deleted object is still there")
    assert not Uploader(rt).put(f"{prefix}/7/index.html", "<p>7</p>")  # its mark was recorded


def test_started_writes_run_while_the_caller_queues_more_and_wait_records_them(rt, settings):
    prefix = f"test/start-{uuid.uuid4().hex[:8]}"
    uploader = BatchUploader(rt, threads=4, batch=100)
    try:
        for i in range(5):
            uploader.put(f"{prefix}/a{i}.html", f"<p>{i}</p>")
        first = uploader.start()
        assert not uploader.pending  # the queue is free for the next batch at once
        uploader.put(f"{prefix}/b.html", "<p>b</p>")
        second = uploader.start()
        assert rt.redis.hget(ETAGS, f"{prefix}/a0.html") is None  # marks wait for `wait`
        assert second.wait() == [f"{prefix}/b.html"]
        assert sorted(first.wait()) == [f"{prefix}/a{i}.html" for i in range(5)]
        assert first.wait() == []  # waited once; a second wait is a no-op
    finally:
        uploader.close()
    assert rt.site.get(f"{prefix}/a4.html").body == b"<p>4</p>"
    assert not Uploader(rt).put(f"{prefix}/b.html", "<p>b</p>")  # its mark was recorded

    nowhere = BatchUploader(Runtime(replace(settings, site_bucket=f"pr-missing-{uuid.uuid4().hex[:8]}")))
    try:
        nowhere.put(f"{prefix}/lost.html", "<p>lost</p>")
        writes = nowhere.start()
        try:
            writes.wait()
        except StorageUnavailable:
            pass
        else:
            raise AssertionError("a refused write did not raise from wait")
    finally:
        nowhere.close()
    assert rt.redis.hget(ETAGS, f"{prefix}/lost.html") is None  # no mark for what was not written
