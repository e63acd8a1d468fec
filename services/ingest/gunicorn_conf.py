"""gunicorn hooks for `pressroom ingest`: Pressroom's log format, tidy Prometheus files when a
worker exits, the workers' heartbeat files in memory."""

import os

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

# Each worker touches its heartbeat file on every turn of its loop; where the temporary
# directory is on disk that can stall the worker (gunicorn's "Blocking os.fchmod" note).
# gunicorn makes the file with mkstemp and unlinks it at once.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK | os.X_OK) else None


def child_exit(server, worker) -> None:
    multiprocess.mark_process_dead(worker.pid)
