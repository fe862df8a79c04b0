"""Gunicorn settings for ``gunicorn -c gunicorn.conf.py infra_api:application``."""

from __future__ import annotations

import logging
from typing import Any

from infra.settings import Settings

# Validates every INFRA_API_* variable before gunicorn binds; a bad one stops start-up here.
_settings = Settings.from_environ()

wsgi_app = "infra_api:application"
bind = f"{_settings.host}:{_settings.port}"

# Each request mostly waits on Pulumi subprocesses, so threads give cheap concurrency;
# two processes keep serving if one is busy or being recycled.
worker_class = "gthread"
workers = 2
threads = 4

# Above the longest request (its timeout plus a first-request virtualenv build), so gunicorn
# never kills a worker mid-pipeline and leaves a stack behind.
timeout = int(_settings.request_timeout) + 180
graceful_timeout = int(_settings.request_timeout) + 30

loglevel = _settings.log_level.lower()

# One dictConfig for gunicorn's loggers and the app's (infra.*, infra_api), all to stderr except
# the access log. gunicorn merges this shallowly into its defaults, so every key is spelled out.
_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"generic": {"format": _FORMAT}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic",
                    "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic",
                          "stream": "ext://sys.stderr"},
    },
    "root": {"level": _settings.log_level, "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level, "handlers": ["error_console"],
                           "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "infra": {"level": _settings.log_level, "handlers": ["error_console"], "propagate": False},
        "infra_api": {"level": _settings.log_level, "handlers": ["error_console"],
                      "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    """Build the program virtualenv once in the master, before any worker takes a request."""
    from infra.basic import Pipeline
    from infra.engine import select_engine
    from infra.errors import InfraError

    try:
        Pipeline(_settings, select_engine(_settings)).prepare()
    except InfraError as exc:
        logging.getLogger("infra").error("warm-up failed, requests will retry: %s", exc)
