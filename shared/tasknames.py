"""Task names and the queue (pool) each belongs to: the contract between services.

Services send tasks by name (`app.send_task(RENDER_ARTICLE, ...)`), so the ingest API
never imports render or notify code. A task's queue is the part of its name before the
first dot.
"""

RENDER_ARTICLE = "render.article"
RENDER_COLLECTION = "render.collection"  # args: [collection slug]; editors changed its order
RENDER_SITE = "render.site"  # old name of SITE_BUILD: a message queued before an upgrade is forwarded
RENDER_RELATED_FANOUT = "render.related_fanout"  # args: [article id]; re-render pages whose lists now show it
RENDER_REBUILD_INDEX = "render.rebuild_index"  # args: rebuild run, chunk number (pressroom rebuild, phase 1)
RENDER_REBUILD_PAGES = "render.rebuild_pages"  # args: rebuild run, chunk number (phase 2)
SITE_BUILD = "site.build"  # the coalesced build of shared pages (home, lists, feeds, sitemaps)
SCHEDULER_SITE_TICK = "scheduler.site_tick"  # decays page views, then sends SITE_REFRESH
SITE_REFRESH = "site.refresh"  # lists/*.json, the news sitemap's ageing, a lost build restarted
NOTIFY_ARTICLE_EVENT = "notify.article_event"  # one shared.messages.ArticleEvent as kwargs["event"]
NOTIFY_ARTICLE_EVENTS = "notify.article_events"  # a list of them as kwargs["events"] (a rebuild's batch)
NOTIFY_QUEUE_BATCH = "notify.queue_batch"  # args: event key, list of subscription ids
NOTIFY_DELIVER = "notify.deliver"  # args: delivery id
NOTIFY_DELIVER_BATCH = "notify.deliver_batch"  # args: list of delivery ids (what the dispatcher sends)
NOTIFY_CONFIRM_EMAIL = "notify.confirm_email"  # args: subscription id
SCHEDULER_NOTIFY_RETRIES = "scheduler.notify_retries"  # sends NOTIFY_DISPATCH
NOTIFY_DISPATCH = "notify.dispatch"  # queue the due deliveries in batches
SCHEDULER_SWEEP_OUTBOX = "scheduler.sweep_outbox"
SCHEDULER_RELEASE_EMBARGOES = "scheduler.release_embargoes"

POOLS = ("render", "site", "notify", "scheduler")

# Message priority on the Redis transport: a worker takes priority 0 (every message sent
# without one) before any of this, so refreshing other pages never delays live news.
BACKGROUND = 9


def queue_for(task_name: str) -> str:
    return task_name.split(".", 1)[0]
