"""Gunicorn settings for ``gunicorn -c gunicorn.conf.py infra_api:application``."""

from __future__ import annotations

import logging
import os
from typing import Any

from infra.logs import dict_config
from infra.settings import Settings

# Validates every INFRA_API_* variable before gunicorn binds; a bad one stops start-up here.
_settings = Settings.from_environ()

# Workers are separate processes: prometheus_client's multiprocess mode lets /metrics in any
# worker report the sum over all of them. It must be chosen before prometheus_client is
# imported, which is why it is set here rather than in a hook.
_METRICS_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                     str(_settings.state_dir / "prometheus"))

wsgi_app = "infra_api:application"
bind = f"{_settings.host}:{_settings.port}"

# Each request mostly waits on Pulumi subprocesses, so threads give cheap concurrency;
# two processes keep serving if one is busy or being recycled.
worker_class = "gthread"
workers = 2
threads = 4

# Above the longest request (its timeout, the cancellation grace, teardown and a first-request
# virtualenv build), so gunicorn never kills a worker mid-pipeline and leaves a stack behind.
timeout = int(_settings.request_timeout + 2 * _settings.cancel_grace) + 180
# SIGTERM: workers stop accepting and finish in-flight requests (each bounded by its deadline).
graceful_timeout = int(_settings.request_timeout + 2 * _settings.cancel_grace) + 30

loglevel = _settings.log_level.lower()

# gunicorn's control socket has one fixed path per user, shared by every instance on the
# machine (tests, benchmarks, several deployments); nothing here uses it.
control_socket_disable = True

# One dictConfig for gunicorn's loggers and the app's, all to stderr (with the request id and
# stack name) except the access log. gunicorn merges it shallowly, so every key is spelled out.
logconfig_dict = dict_config(_settings.log_level, _settings.log_format, {
    "gunicorn.error": {"level": _settings.log_level, "handlers": ["error_console"],
                       "propagate": False},
    "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
})
logconfig_dict["formatters"]["access"] = {"format": "%(message)s"}
logconfig_dict["handlers"]["console"] = {"class": "logging.StreamHandler", "formatter": "access",
                                         "stream": "ext://sys.stdout"}


def on_starting(server: Any) -> None:
    """In the master, before any worker: fresh metrics files, the program venv, one reaper pass."""
    from infra.basic import Pipeline
    from infra.engine import select_engine
    from infra.errors import InfraError
    from infra.metrics import Metrics
    from infra.prepare import make_state_dirs
    from infra.reaper import Reaper

    make_state_dirs(_settings)
    os.makedirs(_METRICS_DIR, exist_ok=True)
    for name in os.listdir(_METRICS_DIR):
        if name.endswith(".db"):
            os.unlink(os.path.join(_METRICS_DIR, name))
    try:
        pipeline = Pipeline(_settings, select_engine(_settings))
        pipeline.prepare()
        # Stacks of workers killed in an earlier run are destroyed before serving starts.
        Reaper(pipeline, Metrics()).run_once()
    except InfraError as exc:
        logging.getLogger("infra").error("warm-up failed, requests will retry: %s", exc)


def post_worker_init(worker: Any) -> None:
    """Start the periodic reaper in each worker (a file lock keeps passes one at a time)."""
    import infra_api

    infra_api.start_reaper()


def worker_exit(server: Any, worker: Any) -> None:
    """A worker that exits cleanly removes its own temp dir."""
    from infra.owners import drop_process_tmp

    drop_process_tmp()


def child_exit(server: Any, worker: Any) -> None:
    """Drop the exited worker's live gauges from the metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
