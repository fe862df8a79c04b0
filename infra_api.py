"""HTTP API: every GET on /id, /uuid, /string or /time burns one ephemeral Pulumi stack.

``create_app()`` wires the resources; ``application`` (alias ``app``) is built on first access
for gunicorn; ``python infra_api.py`` serves locally with a threaded WSGI server.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import logging.config
import signal
import socketserver
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon

from infra import logs
from infra.basic import BurnerResult, Pipeline
from infra.engine import select_engine
from infra.errors import InfraError, ParameterError, SettingsError
from infra.kinds import KINDS, BurnerRequest, parse_request
from infra.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from infra.metrics import Metrics
from infra.openapi import VALUE_DESCRIPTIONS, build_document
from infra.owners import drop_process_tmp
from infra.reaper import Reaper
from infra.settings import Settings
from infra.slots import Slots
from infra.web import BearerAuth, ErrorMapper, RequestContext

logger = logging.getLogger(__name__)

SERVICE = "burner-api"
DESCRIPTION = ("Each GET on a value endpoint provisions an ephemeral Pulumi stack, reads the value "
               "it produced, then destroys and removes the stack.")
# The routes besides the value routes, with what they return (the index page lists them all).
SERVICE_ROUTES = {
    "/healthz": "liveness",
    "/readyz": "readiness: engine, program venv and state dir",
    "/metrics": "Prometheus metrics",
    "/openapi.json": "the OpenAPI 3.1 document",
}


class Burner(Protocol):
    """What the resources need from the pipeline (the seam tests may fill with a fake)."""

    def run(self, request: BurnerRequest) -> BurnerResult:
        """Provision, read and tear down one burner stack."""
        ...

    def readiness(self) -> dict[str, bool]:
        """Named checks that must all pass before the service takes traffic."""
        ...


class BurnerResource:
    """GET /id, /uuid, /string, /time: the value of a fresh burner stack."""

    def __init__(self, burner: Burner, slots: Slots, metrics: Metrics) -> None:
        self._burner = burner
        self._slots = slots
        self._metrics = metrics

    def on_get_id(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Random id of ``bytes`` bytes (1-64, default 8)."""
        resp.media = self._burn("id", req.params)

    def on_get_uuid(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Random UUID."""
        resp.media = self._burn("uuid", req.params)

    def on_get_string(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Random string of ``length`` characters (1-256, default 24)."""
        resp.media = self._burn("string", req.params)

    def on_get_time(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Current time in zone ``tz`` (default UTC)."""
        resp.media = self._burn("time", req.params)

    def _burn(self, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
        # Validation, then a free slot, before the pipeline: a refused request creates nothing.
        request = parse_request(kind, _single_values(params))
        with self._slots.take(), self._metrics.inflight.track_inprogress():
            return render(request, self._burner.run(request))


def render(request: BurnerRequest, result: BurnerResult) -> dict[str, Any]:
    """The JSON body of a successful value request (``response`` is what old clients read)."""
    return {
        "request": result.kind,
        "response": result.value,
        **dict(result.extras),
        "params": dict(request.params),
        "stack": result.stack,
        "duration_ms": round(result.duration_ms, 1),
        "phases_ms": {phase.name: phase.duration_ms for phase in result.phases},
    }


class IndexResource:
    """GET /: what the service is and which endpoints it has."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Describe the service."""
        endpoints = [{"path": "/", "returns": "this description", "parameters": {}}]
        endpoints += [
            {"path": f"/{kind}", "returns": VALUE_DESCRIPTIONS[kind],
             "parameters": {p.name: f"{p.allowed} (default {p.default})" for p in params}}
            for kind, params in KINDS.items()
        ]
        endpoints += [{"path": path, "returns": returns, "parameters": {}}
                      for path, returns in SERVICE_ROUTES.items()]
        resp.media = {"service": SERVICE, "description": DESCRIPTION, "endpoints": endpoints}


class HealthResource:
    """GET /healthz: the process is up and serving (no Pulumi call)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Report liveness."""
        resp.media = {"status": "ok"}


class ReadyResource:
    """GET /readyz: 200 once every readiness check passes, 503 until then."""

    def __init__(self, burner: Burner) -> None:
        self._burner = burner

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Report the readiness checks."""
        checks = self._burner.readiness()
        ready = all(checks.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = {"status": "ready" if ready else "not_ready", "checks": checks}


class MetricsResource:
    """GET /metrics: Prometheus text format."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Expose the metrics."""
        resp.content_type = METRICS_CONTENT_TYPE
        resp.data = self._metrics.exposition()


class OpenApiResource:
    """GET /openapi.json: the OpenAPI 3.1 document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Serve the document."""
        resp.media = self._document


def create_app(settings: Settings | None = None, burner: Burner | None = None,
               metrics: Metrics | None = None) -> falcon.App:
    """Build the WSGI app; reads settings from the environment only when none are given."""
    settings = settings if settings is not None else Settings.from_environ()
    metrics = metrics if metrics is not None else Metrics()
    if burner is None:
        burner = Pipeline(settings, select_engine(settings), metrics)
    middleware: list[Any] = [RequestContext(metrics)]
    if settings.token is not None:
        middleware.append(BearerAuth(settings.token))
    app = falcon.App(middleware=middleware)
    # `?bytes=` must be rejected as a bad value, not silently replaced by the default.
    app.req_options.keep_blank_qs_values = True
    ErrorMapper(metrics).install(app)
    app.add_route("/", IndexResource())
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(burner))
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/openapi.json", OpenApiResource(build_document(auth=settings.token is not None)))
    values = BurnerResource(burner, Slots(settings.max_inflight), metrics)
    for kind in KINDS:
        app.add_route(f"/{kind}", values, suffix=kind)
    return app


def _single_values(params: Mapping[str, Any]) -> dict[str, str]:
    values = {}
    for name, value in params.items():
        if not isinstance(value, str):
            raise ParameterError(name, ",".join(value), "a single value")
        values[name] = value
    return values


@dataclasses.dataclass(frozen=True)
class Service:
    """The app and the collaborators that live as long as the serving process."""

    app: falcon.App
    pipeline: Pipeline
    reaper: Reaper


def build_service(settings: Settings) -> Service:
    """Wire the real pipeline, metrics, reaper and app for a serving process."""
    metrics = Metrics()
    pipeline = Pipeline(settings, select_engine(settings), metrics)
    app = create_app(settings, burner=pipeline, metrics=metrics)
    return Service(app, pipeline, Reaper(pipeline, metrics))


@functools.cache
def _default_service() -> Service:
    return build_service(Settings.from_environ())


def start_reaper() -> None:
    """Start the periodic reaper of the default service (gunicorn's post_worker_init hook)."""
    service = _default_service()
    service.reaper.start(service.pipeline.settings.reap_interval)


def __getattr__(name: str) -> falcon.App:
    # `application`/`app` are built on first access (gunicorn's app load), not at import.
    if name in ("application", "app"):
        return _default_service().app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref server with a thread per request."""

    # Non-daemon threads: on shutdown we wait for in-flight requests so their stacks are torn down.
    daemon_threads = False


class LoggingRequestHandler(WSGIRequestHandler):
    """Send the access log through ``logging`` instead of raw stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


def serve(settings: Settings) -> None:
    """Serve the API until Ctrl-C or SIGTERM, then wait for in-flight requests."""
    service = build_service(settings)
    pipeline, reaper = service.pipeline, service.reaper
    try:
        # Pay the one-off costs (engine probe, venv build) before taking requests, and clean
        # up after a previous run that was killed.
        pipeline.engine.command()
        pipeline.prepare()
        reaper.run_once()
    except InfraError as exc:
        logger.error("warm-up failed, requests will retry: %s", exc)
    reaper.start(settings.reap_interval)
    server = make_server(settings.host, settings.port, service.app, server_class=ThreadingWSGIServer,
                         handler_class=LoggingRequestHandler)
    # Both signals stop the server the same way, even where a shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    logger.info("serving on http://%s:%d (Ctrl-C to stop)", settings.host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping: waiting for in-flight requests")
    finally:
        server.server_close()
        reaper.stop()
        drop_process_tmp()
    logger.info("stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts: later ones must not cut short the wait for in-flight
    # requests, whose stacks still need their teardown.
    signal.signal(signal.SIGINT, _already_stopping)
    signal.signal(signal.SIGTERM, _already_stopping)
    raise KeyboardInterrupt


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    logger.warning("already stopping; waiting for in-flight requests to finish")


def main() -> int:
    """Entry point of ``python infra_api.py``."""
    try:
        settings = Settings.from_environ()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logs.dict_config(settings.log_level, settings.log_format))
    try:
        serve(settings)
    except KeyboardInterrupt:  # Ctrl-C during the warm-up, before serving started
        logger.info("interrupted before serving")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
