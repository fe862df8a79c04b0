"""Gunicorn settings for ``gunicorn -c gunicorn.conf.py infra_api:application``.

The master prepares the state dir and program venv and, when no Temporal cluster is named,
starts the embedded one (once, for all workers). Each worker process connects, runs a Temporal
worker beside its HTTP threads, and drains it when it exits.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from infra.errors import SettingsError
from infra.logs import GunicornLogger, dict_config
from infra.settings import Settings

# Validates every INFRA_API_* variable before gunicorn binds; a bad one stops start-up here,
# in one line as `python infra_api.py` says it (gunicorn would print a traceback of any other
# exception from this file; SystemExit it lets through).
try:
    _settings = Settings.from_environ()
except SettingsError as _exc:
    print(f"error: {_exc}", file=sys.stderr)
    raise SystemExit(2) from None

# Workers are separate processes: prometheus_client's multiprocess mode lets /metrics in any
# worker report the sum over all of them. It must be chosen before prometheus_client is
# imported, which is why it is set here rather than in a hook.
_METRICS_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                     str(_settings.state_dir / "prometheus"))

from infra.stack_routes import MAX_STREAMS  # noqa: E402 - imports prometheus_client

wsgi_app = "infra_api:application"
bind = f"{_settings.host}:{_settings.port}"

# Each request mostly waits on its workflow, so threads give cheap concurrency; two processes
# keep serving if one is busy or being recycled. As many threads as value requests may wait:
# more requests queue at the socket instead of getting 503, and event streams (at most
# MAX_STREAMS per process) leave the other threads free.
worker_class = "gthread"
workers = 2
threads = max(_settings.max_inflight, 2 * MAX_STREAMS)
# Room for idle keep-alive connections beyond the busy threads (gunicorn's default 1000).
worker_connections = threads + 1000

_REQUEST = _settings.request_timeout + _settings.cancel_grace
# Above the longest request plus a first-request virtualenv build.
timeout = int(_REQUEST) + 180
# SIGTERM: workers finish in-flight requests, then their Temporal worker drains its activities.
graceful_timeout = int(2 * _REQUEST) + 60

loglevel = _settings.log_level.lower()
# gunicorn escapes only quotes in its access log; this escapes control characters too.
logger_class = GunicornLogger

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

_embedded: Any = None


def on_starting(server: Any) -> None:
    """In the master, before any worker: state dir, venv, fresh metrics, the embedded Temporal."""
    global _embedded
    from infra.basic import Burner
    from infra.catalog import Catalog
    from infra.embedded import EmbeddedTemporal
    from infra.engine import select_engine
    from infra.errors import InfraError
    from infra.webhooks import load_subscribers

    try:
        programs = Catalog(_settings.programs).programs()
        load_subscribers(_settings.webhooks_file)
        burner = Burner(_settings, select_engine(_settings))
        for program in programs.values():
            burner.venv(program.path)
    except InfraError as exc:
        server.log.error("cannot start: %s", exc)
        raise SystemExit(1) from None
    os.makedirs(_METRICS_DIR, exist_ok=True)
    for name in os.listdir(_METRICS_DIR):
        if name.endswith(".db"):
            os.unlink(os.path.join(_METRICS_DIR, name))
    if _settings.temporal_address is None:
        _embedded = EmbeddedTemporal(_settings.state_dir)
        # Workers are forked from here and read their settings from this environment.
        os.environ["INFRA_API_TEMPORAL_ADDRESS"] = _embedded.start()


def post_worker_init(worker: Any) -> None:
    """Connect this worker process to Temporal and start its Temporal worker."""
    import infra_api

    try:
        infra_api.default_service().start()
    except Exception as exc:
        logging.getLogger("infra").error("cannot start: %s", exc)
        raise


def worker_exit(server: Any, worker: Any) -> None:
    """Drain this process's Temporal worker (in-flight requests are already done)."""
    import infra_api

    infra_api.default_service().stop(last=False)


def on_exit(server: Any) -> None:
    """After every worker is gone: stop the engine's program hosts and the embedded Temporal."""
    from infra.engine import select_engine

    select_engine(_settings).stop_helpers()
    if _embedded is not None:
        _embedded.stop()


def child_exit(server: Any, worker: Any) -> None:
    """Drop the exited worker's live gauges from the metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
