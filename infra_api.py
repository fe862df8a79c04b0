"""HTTP API: every GET on /id, /uuid, /string or /time burns one ephemeral Pulumi stack.

``create_app()`` builds the WSGI app (gunicorn: ``'infra_api:create_app()'``); ``application``
(alias ``app``) is built on first access (gunicorn: ``infra_api:application``);
``python infra_api.py`` serves locally with the development server. Assembly: ``infra.service``.
"""

from __future__ import annotations

import functools
import logging.config
import sys

import falcon

from infra import logs
from infra.app import Operations
from infra.errors import InfraError
from infra.metrics import Metrics
from infra.service import Service
from infra.settings import Settings


def create_app(settings: Settings | None = None, operations: Operations | None = None,
               metrics: Metrics | None = None) -> falcon.App:
    """Build the WSGI app; reads settings from the environment only when none are given.

    Without ``operations`` the real service is assembled; it starts on its first request.
    """
    if settings is None and operations is None and metrics is None:
        return _default_app()
    settings = settings if settings is not None else Settings.from_environ()
    if operations is None:
        return Service(settings, metrics).app()
    from infra.app import build_app

    return build_app(settings, operations, metrics if metrics is not None else Metrics())


@functools.cache
def default_service() -> Service:
    """The service of this process, from the environment (gunicorn's hooks start and stop it)."""
    return Service(Settings.from_environ())


def __getattr__(name: str) -> falcon.App:
    # `application`/`app` are built on first access (gunicorn's app load), not at import.
    if name in ("application", "app"):
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _default_app() -> falcon.App:
    return default_service().app()


def main() -> int:
    """Entry point of ``python infra_api.py``."""
    from infra.devserver import serve

    try:
        settings = Settings.from_environ()
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logs.dict_config(settings.log_level, settings.log_format))
    try:
        serve(settings)
    except InfraError as exc:
        logging.getLogger("infra_api").error("cannot serve: %s", exc)
        return 1
    except OSError as exc:  # a bad host or a busy port
        logging.getLogger("infra_api").error("cannot listen on %s:%d: %s", settings.host,
                                             settings.port, exc.strerror or exc)
        return 1
    except KeyboardInterrupt:  # Ctrl-C during start-up, before serving
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
