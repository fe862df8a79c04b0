"""The HTTP surface: one resource class per route family, wired around an ``Operations`` seam."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import falcon

from infra.basic import BurnerResult
from infra.catalog import Catalog
from infra.control import StackControl
from infra.kinds import KINDS, BurnerRequest, parse_request
from infra.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from infra.metrics import Metrics
from infra.openapi import VALUE_DESCRIPTIONS, build_document
from infra.portal import add_portal
from infra.settings import Settings
from infra.slots import Slots
from infra.stack_routes import OperationsResource, StacksResource
from infra.web import BearerAuth, ErrorMapper, RequestContext, single_values

SERVICE = "burner-api"
DESCRIPTION = ("Each GET on a value endpoint provisions an ephemeral Pulumi stack, reads the value "
               "it produced, then destroys and removes the stack.")
# The routes besides the value routes, with what they return (the index page lists them all).
SERVICE_ROUTES = {
    "/healthz": "liveness",
    "/readyz": "readiness: engine, program venv, state dir, state backend, Temporal and a polling worker",
    "/metrics": "Prometheus metrics",
    "/openapi.json": "the OpenAPI 3.1 document",
    "/programs": "the program catalog",
    "/programs/{program}": "one program's config keys, also as JSON Schema",
    "/stacks": "POST creates a stack of a catalog program (202 + operation); GET lists stacks",
    "/stacks/{stack}": "GET reads a stack; PATCH updates its config or TTL; DELETE destroys it",
    "/operations": "operations, newest first",
    "/operations/{operation}": "one operation: kind, status, times, error, outputs",
    "/operations/{operation}/events": "the operation's events: Server-Sent Events or JSON pages",
    "/operations/{operation}/cancel": "POST cancels a queued or running create, update or burn",
    "/operations/{operation}/stream-ticket": "POST: a short-lived ticket for an EventSource",
}


class Operations(Protocol):
    """What the resources need from the service (the seam tests may fill with a fake)."""

    def burn(self, request: BurnerRequest) -> BurnerResult:
        """Provision, read and tear down one burner stack."""
        ...

    def readiness(self) -> dict[str, bool]:
        """Named checks that must all pass before the service takes traffic."""
        ...


class BurnerResource:
    """GET /id, /uuid, /string, /time: the value of a fresh burner stack."""

    def __init__(self, operations: Operations, slots: Slots, metrics: Metrics) -> None:
        self._operations = operations
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
        # Validation, then a free slot, before the workflow: a refused request creates nothing.
        request = parse_request(kind, single_values(params))
        with self._slots.take(), self._metrics.inflight.track_inprogress():
            return render(request, self._operations.burn(request))


def render(request: BurnerRequest, result: BurnerResult) -> dict[str, Any]:
    """The JSON body of a successful value request (``response`` is what old clients read)."""
    return {
        "request": result.kind,
        "response": result.value,
        "operation": result.operation,
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


class ProgramsResource:
    """GET /programs and /programs/{program}: the catalog and each program's config schema."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """List the programs with their descriptions and config keys."""
        resp.media = {"programs": [
            {"name": program.name, "description": program.description,
             "config": [key.name for key in program.config]}
            for program in sorted(self._catalog.programs().values(), key=lambda p: p.name)]}

    def on_get_program(self, req: falcon.Request, resp: falcon.Response, program: str) -> None:
        """One program: its config keys and the same as JSON Schema."""
        found = self._catalog.programs().get(program)
        if found is None:
            raise falcon.HTTPNotFound(description=f"no program named {program!r} in the catalog")
        resp.media = {"name": found.name, "description": found.description,
                      "config": {key.name: {"type": key.type, "description": key.description,
                                            "default": key.shown_default,
                                            "secret": key.secret,
                                            "required": key.required,
                                            **({"items": key.items} if key.items else {})}
                                 for key in found.config},
                      "schema": found.json_schema()}


class HealthResource:
    """GET /healthz: the process is up and serving (no Pulumi call)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Report liveness."""
        resp.media = {"status": "ok"}


class ReadyResource:
    """GET /readyz: 200 once every readiness check passes, 503 until then."""

    def __init__(self, operations: Operations) -> None:
        self._operations = operations

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Report the readiness checks."""
        checks = self._operations.readiness()
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
    """GET /openapi.json: the OpenAPI 3.1 document (built on first use: it reads the catalog)."""

    def __init__(self, settings: Settings, catalog: Catalog | None) -> None:
        self._settings = settings
        self._catalog = catalog
        self._document: dict[str, Any] | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Serve the document."""
        if self._document is None:
            programs = (None if self._catalog is None else
                        sorted(self._catalog.programs().values(), key=lambda p: p.name))
            self._document = build_document(self._settings.token is not None, programs,
                                            self._settings.max_ttl)
        resp.media = self._document


def build_app(settings: Settings, operations: Operations, metrics: Metrics,
              catalog: Catalog | None = None, control: StackControl | None = None) -> falcon.App:
    """The WSGI app around the given operations (no I/O); ``control`` adds the stack routes."""
    catalog = catalog if catalog is not None else Catalog(settings.programs)
    context = RequestContext(metrics)
    middleware: list[Any] = [context]
    if settings.token is not None:
        middleware.append(BearerAuth(settings.token))
    app = falcon.App(middleware=middleware)
    # `?bytes=` must be rejected as a bad value, not silently replaced by the default.
    app.req_options.keep_blank_qs_values = True
    ErrorMapper(metrics).install(app)
    context.add_route(app, "/", IndexResource())
    context.add_route(app, "/healthz", HealthResource())
    context.add_route(app, "/readyz", ReadyResource(operations))
    context.add_route(app, "/metrics", MetricsResource(metrics))
    context.add_route(app, "/openapi.json", OpenApiResource(settings, catalog))
    programs = ProgramsResource(catalog)
    context.add_route(app, "/programs", programs)
    context.add_route(app, "/programs/{program}", programs, suffix="program")
    if control is not None:
        stacks = StacksResource(control)
        context.add_route(app, "/stacks", stacks)
        context.add_route(app, "/stacks/{stack}", stacks, suffix="stack")
        operations_resource = OperationsResource(control, settings.token)
        context.add_route(app, "/operations", operations_resource)
        context.add_route(app, "/operations/{operation}", operations_resource, suffix="operation")
        context.add_route(app, "/operations/{operation}/events", operations_resource, suffix="events")
        context.add_route(app, "/operations/{operation}/cancel", operations_resource, suffix="cancel")
        context.add_route(app, "/operations/{operation}/stream-ticket", operations_resource,
                          suffix="ticket")
    values = BurnerResource(operations, Slots(settings.max_inflight), metrics)
    for kind in KINDS:
        context.add_route(app, f"/{kind}", values, suffix=kind)
    add_portal(app)
    return app
