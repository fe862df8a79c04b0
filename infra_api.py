"""HTTP API: every GET on /id, /uuid, /string or /time burns one ephemeral Pulumi stack.

``create_app()`` wires the resources; ``application`` (alias ``app``) is built on first access
for gunicorn; ``python infra_api.py`` serves locally with a threaded WSGI server.
"""

from __future__ import annotations

import functools
import logging
import signal
import socketserver
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon

from infra.basic import BurnerResult, Pipeline
from infra.engine import select_engine
from infra.errors import EngineError, InfraError, ParameterError, SettingsError
from infra.kinds import KINDS, BurnerRequest, parse_request
from infra.settings import Settings

logger = logging.getLogger(__name__)

SERVICE = "burner-api"
DESCRIPTION = ("Each GET on a value endpoint provisions an ephemeral Pulumi stack, reads the value "
               "it produced, then destroys and removes the stack.")
VALUE_DESCRIPTIONS = {
    "id": "random id, base64url (also hex)",
    "uuid": "random UUID",
    "string": "random string",
    "time": "current time in a time zone, ISO 8601",
}


class Burner(Protocol):
    """What the resources need from the pipeline (the seam tests may fill with a fake)."""

    def run(self, request: BurnerRequest) -> BurnerResult:
        """Provision, read and tear down one burner stack."""
        ...


class BurnerResource:
    """GET /id, /uuid, /string, /time: the value of a fresh burner stack."""

    def __init__(self, burner: Burner) -> None:
        self._burner = burner

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
        # Validation happens here, before the pipeline, so a bad request never creates a stack.
        request = parse_request(kind, _single_values(params))
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
        endpoints = [
            {"path": f"/{kind}", "returns": VALUE_DESCRIPTIONS[kind],
             "parameters": {p.name: f"{p.allowed} (default {p.default})" for p in params}}
            for kind, params in KINDS.items()
        ]
        endpoints.append({"path": "/healthz", "returns": "liveness", "parameters": {}})
        endpoints.insert(0, {"path": "/", "returns": "this description", "parameters": {}})
        resp.media = {"service": SERVICE, "description": DESCRIPTION, "endpoints": endpoints}


class HealthResource:
    """GET /healthz: the process is up and serving (no Pulumi call)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Report liveness."""
        resp.media = {"status": "ok"}


def create_app(settings: Settings | None = None, burner: Burner | None = None) -> falcon.App:
    """Build the WSGI app; reads settings from the environment only when none are given."""
    settings = settings if settings is not None else Settings.from_environ()
    if burner is None:
        burner = Pipeline(settings, select_engine(settings))
    app = falcon.App()
    # `?bytes=` must be rejected as a bad value, not silently replaced by the default.
    app.req_options.keep_blank_qs_values = True
    app.set_error_serializer(_serialize_error)
    app.add_error_handler(InfraError, _handle_infra_error)
    app.add_route("/", IndexResource())
    app.add_route("/healthz", HealthResource())
    values = BurnerResource(burner)
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


def _handle_infra_error(req: falcon.Request, resp: falcon.Response, ex: InfraError,
                        params: dict[str, Any]) -> None:
    """Map the error tree to HTTP once: 400 for parameters, 502 for the engine, else 500."""
    if isinstance(ex, ParameterError):
        resp.status = falcon.HTTP_400
        resp.media = {"title": "Invalid parameter", "parameter": ex.parameter,
                      "value": ex.value, "allowed": ex.allowed,
                      "description": f"invalid {ex.parameter}={ex.value!r}; allowed: {ex.allowed}"}
    elif isinstance(ex, EngineError):
        logger.error("%s %s: %s", req.method, req.path, ex, exc_info=ex)
        resp.status = falcon.HTTP_502
        resp.media = {"title": "Pulumi engine error", "stack": ex.stack,
                      "description": f"the {ex.phase} step failed; the server log has details"}
    else:
        logger.error("%s %s: %s", req.method, req.path, ex, exc_info=ex)
        resp.status = falcon.HTTP_500
        resp.media = {"title": "Internal error", "description": "see the server log"}


def _serialize_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError) -> None:
    # JSON whatever the client's Accept header says: every client of this API reads JSON.
    resp.content_type = falcon.MEDIA_JSON
    resp.media = ex.to_dict()


@functools.cache
def _default_app() -> falcon.App:
    return create_app()


def __getattr__(name: str) -> falcon.App:
    # `application`/`app` are built on first access (gunicorn's app load), not at import.
    if name in ("application", "app"):
        return _default_app()
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
    pipeline = Pipeline(settings, select_engine(settings))
    app = create_app(settings, burner=pipeline)
    try:
        # Pay the one-off costs (engine probe, venv build) before taking requests.
        pipeline.engine.command()
        pipeline.prepare()
    except InfraError as exc:
        logger.error("warm-up failed, requests will retry: %s", exc)
    server = make_server(settings.host, settings.port, app, server_class=ThreadingWSGIServer,
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
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve(settings)
    except KeyboardInterrupt:  # Ctrl-C during the warm-up, before serving started
        logger.info("interrupted before serving")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
