"""The base class of every Pressroom task (the Celery app's `task_cls`).

What every task shares lives here or in the app's configuration, not in each decorator:
delivery (`acks_late`, requeued when a worker is lost, no results: `shared.celery_app`),
its runtime (`self.rt`: the settings, Redis and S3 clients of this process), a retry
schedule with jittered exponential backoff for the transient errors a task names in
`autoretry_for`, and metrics (every task is counted and timed by `shared.task_metrics`
through Celery's signals).
"""

from __future__ import annotations

from celery import Task

from shared.runtime import Runtime, runtime_for


class PressroomTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True

    @property
    def rt(self) -> Runtime:
        """This process's runtime for the app's settings (one per process, made on first use)."""
        return runtime_for(self.app.pressroom_settings)
