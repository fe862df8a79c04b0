"""The OpenAPI 3.1 document of the API, built as data from the request kinds and routes."""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from typing import Any

from infra.catalog import Program
from infra.kinds import KINDS
from infra.openapi_stacks import ERRORS as STACK_ERRORS
from infra.openapi_stacks import stack_paths, stack_schemas
from infra.settings import DEFAULT_MAX_TTL

VALUE_DESCRIPTIONS = {
    "id": "random id, base64url (also hex)",
    "uuid": "random UUID",
    "string": "random string",
    "time": "current time in a time zone, ISO 8601",
}
# JSON Schema of each kind's query parameters; infra.kinds enforces exactly these bounds.
PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "bytes": {"type": "integer", "minimum": 1, "maximum": 64, "default": 8},
    "length": {"type": "integer", "minimum": 1, "maximum": 256, "default": 24},
    "tz": {"type": "string", "default": "UTC"},
}
ERROR_CODES = ["invalid_parameter", "unauthorized", "forbidden", "not_found",
               "method_not_allowed", "conflict", "idempotency_key_reused", "overloaded",
               "state_dir_unusable", "orchestration_unavailable", "store_unavailable",
               "engine_error", "deadline_exceeded", "internal_error", "bad_request",
               "length_required", "request_entity_too_large", "unsupported_media_type"]
# What no single operation lists: the answer to the methods no route has.
OTHER_METHODS = ("Every route answers GET and OPTIONS only: any other method, HEAD and invented "
                 "ones included, gets 405 with an Allow header, the Error body and X-Request-ID.")
_REQUEST_ID = {"description": "the request id: the client's X-Request-ID if it was a plain "
                              "token of up to 128 characters, else a generated one",
               "schema": {"type": "string"}}
_ERROR_DESCRIPTIONS = {
    "400": "a query parameter is unknown, repeated or out of range; no stack was created",
    "401": "the bearer token is missing or wrong",
    "500": "an unexpected error; the server log has the details",
    "502": "a Pulumi step failed; the stack was still destroyed and removed",
    "503": "every request slot of this process is busy, the state directory is unusable, or "
           "Temporal is unreachable; nothing was started",
    "504": "the request timeout cancelled the Pulumi operation; the stack was still destroyed",
}


def build_document(auth: bool, programs: Sequence[Program] | None = None,
                   max_ttl: float = DEFAULT_MAX_TTL) -> dict[str, Any]:
    """The OpenAPI document; with ``auth`` every route but /healthz needs a bearer token.

    With ``programs`` (the catalog), the stack and operation routes are included.
    """
    paths: dict[str, Any] = {
        "/": {"get": _operation("index", "Describe the service and list its endpoints",
                                {"200": _json("the description", {"$ref": "#/components/schemas/Index"})},
                                auth)},
        "/healthz": {"get": _operation("healthz", "Liveness: the process serves requests",
                                       {"200": _json("alive", _status_schema(["ok"]))}, False)},
        "/readyz": {"get": _operation("readyz", "Readiness: engine found, program venv built, "
                                      "state directory writable, state backend reachable",
                                      {"200": _json("ready", {"$ref": "#/components/schemas/Ready"}),
                                       "503": _json("not ready yet", {"$ref": "#/components/schemas/Ready"})},
                                      auth)},
        "/metrics": {"get": _operation("metrics", "Prometheus metrics in text format",
                                       {"200": {"description": "metrics",
                                                "headers": {"X-Request-ID": _REQUEST_ID},
                                                "content": {"text/plain": {"schema": {"type": "string"}}}}},
                                       auth)},
        "/openapi.json": {"get": _operation("openapi", "This document",
                                            {"200": _json("the OpenAPI document", {"type": "object"})},
                                            auth)},
        "/programs": {"get": _operation("programs", "The program catalog",
                                        {"200": _json("every program",
                                                      {"$ref": "#/components/schemas/Programs"})},
                                        auth)},
        "/programs/{program}": {"get": {
            **_operation("program", "One program's config keys, also as JSON Schema",
                         {"200": _json("the program", {"$ref": "#/components/schemas/Program"}),
                          "404": _json("no program of that name",
                                       {"$ref": "#/components/schemas/Error"})}, auth),
            "parameters": [{"name": "program", "in": "path", "required": True,
                            "schema": {"type": "string"}}]}},
    }
    for kind, params in KINDS.items():
        schema = _value_schema(kind)
        responses = {"200": _json(f"the {VALUE_DESCRIPTIONS[kind]}", schema),
                     "400": _error("400"), "500": _error("500"), "502": _error("502"),
                     "503": _error("503", retry_after=True), "504": _error("504")}
        operation = _operation(kind, f"Provision a burner stack and return its "
                               f"{VALUE_DESCRIPTIONS[kind]}", responses, auth)
        operation["parameters"] = [_parameter(param.name, param.allowed) for param in params]
        paths[f"/{kind}"] = {"get": operation}
    schemas = _schemas()
    if programs is not None:
        paths.update(stack_paths(programs, max_ttl, _json, _stack_error,
                                 lambda name, summary, responses: _operation(name, summary,
                                                                             responses, auth)))
        schemas.update(stack_schemas())
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "burner-api", "version": "0.1.0",
                 "description": "Each GET on a value endpoint provisions an ephemeral Pulumi "
                                "stack, reads the value it produced, then destroys and removes it. "
                                + OTHER_METHODS},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return document


def _operation(name: str, summary: str, responses: dict[str, Any], auth: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": name, "summary": summary,
                                 "responses": dict(responses)}
    if auth:
        operation["security"] = [{"bearer": []}]
        operation["responses"]["401"] = _error("401")
    return operation


def _parameter(name: str, allowed: str) -> dict[str, Any]:
    schema = dict(PARAM_SCHEMAS[name])
    if name == "tz":
        schema["enum"] = sorted(zoneinfo.available_timezones())
    return {"name": name, "in": "query", "required": False, "description": allowed,
            "schema": schema}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "headers": {"X-Request-ID": _REQUEST_ID},
            "content": {"application/json": {"schema": schema}}}


def _error(status: str, retry_after: bool = False) -> dict[str, Any]:
    response = _json(_ERROR_DESCRIPTIONS[status], {"$ref": "#/components/schemas/Error"})
    if retry_after:
        response["headers"]["Retry-After"] = {"description": "seconds to wait before retrying",
                                              "required": True, "schema": {"type": "string"}}
    return response


def _stack_error(status: str, family: str) -> dict[str, Any]:
    response = _json(STACK_ERRORS[(status, family)], {"$ref": "#/components/schemas/Error"})
    if status == "503":
        response["headers"]["Retry-After"] = {"description": "seconds to wait before retrying",
                                              "required": True, "schema": {"type": "string"}}
    return response


def _status_schema(values: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": ["status"],
            "properties": {"status": {"type": "string", "enum": values}}}


def _value_schema(kind: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "request": {"const": kind},
        "response": {"type": "string", "description": VALUE_DESCRIPTIONS[kind]},
        "params": {"type": "object", "additionalProperties": {"type": "string"}},
        "stack": {"type": "string", "pattern": "^burner-[0-9a-f]{16}$"},
        "operation": {"type": "string", "pattern": "^op-[0-9a-f]{16}$",
                      "description": "the operation's id (see /operations/{operation})"},
        "duration_ms": {"type": "number", "minimum": 0},
        "phases_ms": {"type": "object", "additionalProperties": {"type": "number"}},
    }
    if kind == "id":
        properties["hex"] = {"type": "string", "pattern": "^[0-9a-f]+$"}
    return {"type": "object", "required": sorted(properties), "properties": properties,
            "additionalProperties": False}


def _schemas() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object", "required": ["title", "code", "description", "request_id"],
            "properties": {
                "title": {"type": "string"},
                "code": {"type": "string", "enum": ERROR_CODES},
                "description": {"type": "string"},
                "request_id": {"type": "string"},
                "parameter": {"type": "string"}, "value": {"type": "string"},
                "allowed": {"type": "string"}, "stack": {"type": ["string", "null"]},
                "phase": {"type": "string"}, "retry_after": {"type": "integer"},
                "operation": {"type": "string", "description": "the operation in the way"},
            },
        },
        "Programs": {
            "type": "object", "required": ["programs"],
            "properties": {"programs": {"type": "array", "items": {
                "type": "object", "required": ["name", "description", "config"],
                "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                               "config": {"type": "array", "items": {"type": "string"}}}}}},
        },
        "Program": {
            "type": "object", "required": ["name", "description", "config", "schema"],
            "properties": {
                "name": {"type": "string"}, "description": {"type": "string"},
                "config": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["type", "description", "default", "secret",
                                                   "required"],
                    "properties": {"type": {"enum": ["string", "integer", "boolean", "array"]},
                                   "description": {"type": "string"}, "default": {},
                                   "secret": {"type": "boolean"},
                                   "required": {"type": "boolean"},
                                   "items": {"type": "string"}}}},
                "schema": {"type": "object", "description": "the config as JSON Schema"},
            },
        },
        "Ready": {
            "type": "object", "required": ["status", "checks"],
            "properties": {"status": {"type": "string", "enum": ["ready", "not_ready"]},
                           "checks": {"type": "object",
                                      "additionalProperties": {"type": "boolean"}}},
        },
        "Index": {
            "type": "object", "required": ["service", "description", "endpoints"],
            "properties": {
                "service": {"type": "string"}, "description": {"type": "string"},
                "endpoints": {"type": "array", "items": {
                    "type": "object", "required": ["path", "returns", "parameters"],
                    "properties": {"path": {"type": "string"}, "returns": {"type": "string"},
                                   "parameters": {"type": "object",
                                                  "additionalProperties": {"type": "string"}}}}},
            },
        },
    }
