from shared import tasknames
from shared.celery_app import create_celery
from shared.settings import Settings


def test_delivery_semantics_are_at_least_once_and_json():
    app = create_celery(Settings(task_time_limit=300))
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    from shared.tasks import PressroomTask

    assert conf.broker_transport_options["visibility_timeout"] > PressroomTask.retry_backoff_max * 2


def test_tasks_route_to_their_pool_by_name():
    app = create_celery(Settings())
    for name, queue in [(tasknames.RENDER_ARTICLE, "render"), (tasknames.NOTIFY_ARTICLE_EVENT, "notify"),
                        (tasknames.SCHEDULER_SWEEP_OUTBOX, "scheduler")]:
        assert app.amqp.router.route({}, name)["queue"].name == queue
    assert {q.name for q in app.conf.task_queues} == set(tasknames.POOLS)


def test_beat_runs_only_scheduler_tasks():
    app = create_celery(Settings())
    assert {tasknames.queue_for(e["task"]) for e in app.conf.beat_schedule.values()} == {"scheduler"}


def test_every_task_is_a_pressroom_task_with_its_runtime():
    from shared.tasks import PressroomTask

    settings = Settings(task_time_limit=300)
    app = create_celery(settings, include_tasks=True)
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert set(ours) >= {tasknames.RENDER_ARTICLE, tasknames.SITE_BUILD, tasknames.NOTIFY_DELIVER_BATCH,
                         tasknames.SCHEDULER_SWEEP_OUTBOX, tasknames.RENDER_RELATED_FANOUT}
    assert all(isinstance(task, PressroomTask) and task.acks_late and task.ignore_result for task in ours.values())
    assert ours[tasknames.RENDER_ARTICLE].rt.settings is settings
