"""gunicorn hooks for `pressroom ingest`: Pressroom's log format, tidy Prometheus files when a worker exits."""

from gunicorn import glogging
from prometheus_client import multiprocess

from shared.logs import configure_logging, formatter
from shared.settings import Settings


class Logger(glogging.Logger):
    """gunicorn's own error and access logs, and the application's, in PRESSROOM_LOG_FORMAT."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        settings = Settings.from_env()
        configure_logging(settings)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter(settings))


logger_class = Logger


def child_exit(server, worker) -> None:
    multiprocess.mark_process_dead(worker.pid)
