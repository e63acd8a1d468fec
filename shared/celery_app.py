"""The Celery app: JSON messages, one queue per pool, at-least-once delivery.

Delivery semantics: tasks are acknowledged after they finish (`acks_late`) and requeued
when a worker process dies (`reject_on_worker_lost`), so every task must be idempotent;
the Redis visibility timeout is set above every task time limit so a long task is not
redelivered while it still runs. Nothing is scheduled with a long ETA: delayed work
lives in Redis sorted sets that the scheduler sweeps.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared import tasknames
from shared.settings import Settings

TASK_MODULES = ["services.render.tasks", "services.notify.tasks", "services.scheduler.tasks"]


def _survive_broker_loss() -> None:
    """Keep a worker alive when Redis goes away while it holds unacknowledged tasks.

    kombu (5.7) tears a channel's connection down before the channel tries to restore its
    unacknowledged messages, so the restore fails with AttributeError instead of a
    connection error; the worker treats that as unrecoverable and exits. Raising the
    connection error it really is lets kombu ignore it and reconnect; the messages stay in
    Redis's unacked set and are restored after the visibility timeout.
    """
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, "pressroom_patched", False):
        return

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise RedisConnectionError("broker connection already closed")
        return original(self, asynchronous=asynchronous)

    _connparams.pressroom_patched = True
    kombu_redis.Channel._connparams = _connparams


def create_celery(settings: Settings, include_tasks: bool = False) -> Celery:
    _survive_broker_loss()
    app = Celery("pressroom", include=TASK_MODULES if include_tasks else [], task_cls="shared.tasks:PressroomTask")
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,  # their messages come back anyway
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1000,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=settings.task_time_limit - 5,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_default_queue="render",
        task_queues=[Queue(pool) for pool in tasknames.POOLS],
        task_routes=(route_by_name,),
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "sweep-outbox": {"task": tasknames.SCHEDULER_SWEEP_OUTBOX, "schedule": 5.0},
            "release-embargoes": {"task": tasknames.SCHEDULER_RELEASE_EMBARGOES, "schedule": 1.0},
            "site-tick": {"task": tasknames.SCHEDULER_SITE_TICK, "schedule": 30.0},
            "notify-retries": {"task": tasknames.SCHEDULER_NOTIFY_RETRIES, "schedule": 1.0},
        },
    )
    app.pressroom_settings = settings
    return app


def route_by_name(name, args, kwargs, options, task=None, **kw):
    return {"queue": tasknames.queue_for(name)}
