"""The render task as the one Redis command kombu would run to publish it, for the accept script.

Pushing the task inside the Lua call that records the article's state makes the hand-off
atomic (no outbox entry to clear afterwards) and saves two round trips and Celery's publish
path, about a millisecond of CPU per request, on the hottest path of the API. The message
itself is still built by Celery and kombu: Celery's own task-protocol builder makes the
task message, and kombu's Producer publishes it on a channel that hands kombu's Redis
transport a recorder (its batch-publish hook) instead of running the command. The queue
and exchange are the ones Celery's router picks for the task, checked once; `send_task`
itself is skipped (its option merging and signals cost more than the rest, and Pressroom
uses neither). Only a single LPUSH is taken; a different transport, a broker other than
the state Redis, a key prefix, a route that is not a direct queue, or a kombu that
publishes any other way gives None, and the caller sends the task the ordinary way with
the outbox behind it.

Built cold, in the middle of a request, that message costs 0.25-0.4 ms of CPU. So it is
built once a process for a stand-in article, and every render message after it is that
text with the article, the version, the task id and the delivery tag put in. The template
is kept only if filling it for a second stand-in gives exactly what Celery and kombu
build for that one; if not, every message is built by them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import threading
import weakref
from dataclasses import dataclass

from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu import Producer
from kombu.utils.uuid import uuid

from shared import tasknames
from shared.article_state import Enqueue
from shared.forks import current_pid

log = logging.getLogger("pressroom.ingest")


class _Recorder:
    """What kombu's Redis transport calls `add(command, *args)` on in place of running it."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple]] = []

    def add(self, name: str, *args) -> None:
        self.commands.append((name, args))


class _RecordingChannel:
    """kombu's channel, except that publishing records the final Redis commands in this thread's recorder."""

    def __init__(self, channel, local: threading.local) -> None:
        self._channel = channel
        self._local = local

    def __getattr__(self, name: str):
        return getattr(self._channel, name)

    def basic_publish(self, message, exchange, routing_key, **kwargs):
        recorder = self._local.recorder
        return self._channel.basic_publish(message, exchange, routing_key, _publish_batch=recorder, **kwargs)


@dataclass(frozen=True)
class _Template:
    """A render message's text cut where the task id, delivery tag, args repr and body go."""

    queue: str
    parts: tuple[str, ...]  # text, field, text, field, ..., text
    body: tuple[str, str, str]  # the decoded body around the article id and the version

    @classmethod
    def cut(cls, built: Enqueue, aid: str, version: int) -> _Template | None:
        message = json.loads(built.message)
        body = base64.b64decode(message["body"]).decode()
        aid_json, version_text = json.dumps(aid), str(version)
        if body.count(aid_json) != 1 or body.count(version_text) != 1 or body.index(aid_json) > body.index(
                version_text) or message["headers"].get("argsrepr") != repr([aid, version]):
            return None
        before, _, rest = body.partition(aid_json)
        between, _, after = rest.partition(version_text)
        fields = {
            message["headers"]["id"]: "id", message["properties"]["delivery_tag"]: "tag",
            message["body"]: "body", json.dumps(repr([aid, version]))[1:-1]: "argsrepr",
        }
        pieces = re.split("(" + "|".join(map(re.escape, fields)) + ")", built.message)
        parts = tuple(fields.get(piece, piece) if i % 2 else piece for i, piece in enumerate(pieces))
        return cls(built.queue, parts, (before, between, after))

    def fill(self, aid: str, version: int, task_id: str, tag: str) -> Enqueue:
        before, between, after = self.body
        values = {
            "id": task_id, "tag": tag, "argsrepr": json.dumps(repr([aid, version]))[1:-1],
            "body": base64.b64encode(f"{before}{json.dumps(aid)}{between}{version}{after}".encode()).decode(),
        }
        parts = self.parts
        return Enqueue(self.queue, "".join(values[part] if i % 2 else part for i, part in enumerate(parts)))


# Stand-ins no article has: an article id is URL-safe base64 of a hash, a version at most 2**53.
_STAND_INS = (("pressroom-template-1", 2**60 + 7), ("pressroom-template-2", 2**60 + 11))
_UNSET = object()


class TaskMessages:
    """Builds render-task messages for one Celery app in this process (thread-safe, fork-aware)."""

    def __init__(self, celery: Celery, state_redis_url: str) -> None:
        self.celery = celery
        conf = celery.conf
        self.usable = (
            conf.broker_url == state_redis_url
            and conf.broker_url.split("://", 1)[0] in ("redis", "rediss", "unix")
            and not (conf.broker_transport_options or {}).get("global_keyprefix")
        )
        self.queue, self.delivery_mode = "", None
        self.origin = anon_nodename()
        if self.usable:
            try:
                queue = celery.amqp.router.route({}, tasknames.RENDER_ARTICLE, (), {})["queue"]
            except Exception:  # a route Celery cannot resolve: leave it to send_task
                queue = None
            if queue is None or queue.exchange.type != "direct":
                self.usable = False
            else:  # what Celery's send_task_message does for a direct queue: publish to it by name
                self.queue = queue.name
                self.delivery_mode = queue.exchange.delivery_mode or conf.task_default_delivery_mode
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pid = 0
        self._channel = None
        self._connection = None
        self._template: _Template | None | object = _UNSET

    def render(self, aid: str, version: int) -> Enqueue | None:
        """The render task for (aid, version) as (list key, payload), or None: send it the ordinary way."""
        if not self.usable:
            return None
        template = self._template
        if template is _UNSET:
            template = self._make_template()
        if template is not None:
            return template.fill(aid, version, uuid(), uuid())
        return self.build(aid, version)

    def _make_template(self) -> _Template | None:
        (first, first_version), (second, second_version) = _STAND_INS
        built = self.build(first, first_version)
        check = self.build(second, second_version) if built else None
        if built is None or check is None:
            return None  # the broker is out of reach: the next message tries again
        template = _Template.cut(built, first, first_version)
        if template is not None:
            message = json.loads(check.message)
            ids = message["headers"]["id"], message["properties"]["delivery_tag"]
            if template.fill(second, second_version, *ids) != check:
                template = None
        if template is None:
            log.warning("the render message is not what its template gives; each one is built by Celery")
        self._template = template
        return template

    def build(self, aid: str, version: int) -> Enqueue | None:
        """The render message for (aid, version) as Celery and kombu build it, or None."""
        try:
            producer = self._producer()
            self._local.recorder = recorder = _Recorder()
            conf = self.celery.conf
            args = [aid, version]
            headers, properties, body, _ = self.celery.amqp.create_task_message(
                uuid(), tasknames.RENDER_ARTICLE, args, {}, argsrepr=repr(args), kwargsrepr="{}", origin=self.origin
            )
            producer.publish(
                body, exchange="", routing_key=self.queue, serializer=conf.task_serializer,
                compression=conf.task_compression, headers=headers, delivery_mode=self.delivery_mode,
                retry=False, declare=[], **properties,
            )
        except Exception as exc:  # the broker is unreachable, or kombu changed: the ordinary send decides
            log.warning("cannot build the render message for %s v%s: %s", aid, version, exc)
            self._reset()
            return None
        if len(recorder.commands) != 1:
            return None
        name, args = recorder.commands[0]
        if name != "lpush" or len(args) != 2 or not isinstance(args[0], str):
            return None
        return Enqueue(queue=args[0], message=args[1])

    def _producer(self) -> Producer:
        channel = self._shared_channel()
        producer = getattr(self._local, "producer", None)
        if producer is None or getattr(self._local, "channel", None) is not channel:
            producer = Producer(_RecordingChannel(channel, self._local), auto_declare=False)
            self._local.producer, self._local.channel = producer, channel
        return producer

    def _shared_channel(self):
        """One kombu channel per process: it only shapes messages here, it never sends."""
        with self._lock:
            if self._channel is None or self._pid != current_pid():
                connection = self.celery.connection_for_write()
                self._channel = connection.default_channel  # connects once (kombu pings the broker)
                self._connection, self._pid = connection, current_pid()
            return self._channel

    def _reset(self) -> None:
        with self._lock:
            self._channel = None
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection is being dropped anyway
                connection.release()


_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def task_messages(celery, state_redis_url: str) -> TaskMessages | None:
    """The TaskMessages of a Celery app (None for anything that is not one, e.g. a test's stand-in)."""
    if not isinstance(celery, Celery):
        return None
    with _cache_lock:
        messages = _cache.get(celery)
        if messages is None or messages.celery is not celery:
            messages = _cache[celery] = TaskMessages(celery, state_redis_url)
        return messages
