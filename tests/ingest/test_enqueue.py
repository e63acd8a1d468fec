"""The render message the accept script pushes: Celery's and kombu's, filled in from a template."""

from __future__ import annotations

import base64
import json
import logging
from unittest import mock

import pytest

from services.ingest.articles import enqueue
from services.ingest.articles.enqueue import TaskMessages
from shared import keys
from shared.celery_app import create_celery


@pytest.fixture
def messages(settings) -> TaskMessages:
    return TaskMessages(create_celery(settings), settings.redis_url)


def _normalised(message: str) -> dict:
    """The message with its two random ids taken out."""
    data = json.loads(message)
    task_id, tag = data["headers"]["id"], data["properties"]["delivery_tag"]
    return json.loads(message.replace(task_id, "<id>").replace(tag, "<tag>"))


@pytest.mark.parametrize("aid, version", [
    (keys.article_id("urn:x:1"), 1), (keys.article_id("urn:x:2"), 2**53), ("a-_b", 1152921504606846983), ("1", 11),
])
def test_a_message_from_the_template_is_the_one_celery_and_kombu_build(messages, aid, version):
    made = messages.render(aid, version)
    assert messages._template is not None  # the template passed its check and is in use
    built = messages.build(aid, version)
    assert made.queue == built.queue == "render"
    assert _normalised(made.message) == _normalised(built.message)
    data = json.loads(made.message)
    assert json.loads(base64.b64decode(data["body"]))[0] == [aid, version]
    assert data["headers"]["root_id"] == data["properties"]["correlation_id"] == data["headers"]["id"]
    again = json.loads(messages.render(aid, version).message)
    assert again["headers"]["id"] != data["headers"]["id"]  # every task its own id and delivery tag
    assert again["properties"]["delivery_tag"] != data["properties"]["delivery_tag"]


def test_a_template_that_does_not_give_celerys_message_is_not_used(messages, caplog):
    real_build = messages.build

    def build_with_a_new_header(aid, version):
        """As if a Celery release added a header holding the argument: the cut template would drop it."""
        made = real_build(aid, version)
        data = json.loads(made.message)
        data["headers"]["note"] = f"{aid}/{version}"
        return enqueue.Enqueue(made.queue, json.dumps(data))

    with mock.patch.object(messages, "build", side_effect=build_with_a_new_header), \
            caplog.at_level(logging.WARNING, "pressroom.ingest"):
        made = messages.render("abc", 3)
    assert messages._template is None and "each one is built by Celery" in caplog.text
    assert json.loads(made.message)["headers"]["note"] == "abc/3"  # built the ordinary way


def test_no_template_is_kept_while_the_broker_cannot_build_one(messages):
    with mock.patch.object(messages, "build", return_value=None):
        assert messages.render("abc", 3) is None
    assert messages._template is enqueue._UNSET  # the next message tries again
    assert messages.render("abc", 3) is not None and messages._template is not None
