"""The OpenAPI paths and schemas of the stack and operation routes.

Each catalog program's Pulumi.yaml config block is the one schema of its create body: it is
served here as one ``oneOf`` branch per program, the same JSON Schema ``/programs/{program}``
shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from infra.catalog import Program

OPERATION_KINDS = ["burn", "create", "update", "destroy", "expire"]
OPERATION_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]
STACK_STATUSES = ["creating", "ready", "updating", "destroying", "failed"]
EVENT_TYPES = ["status", "resource", "diagnostic", "summary", "webhook"]

# (description, schema) -> a documented JSON response with the request-id header.
Respond = Callable[[str, dict[str, Any]], dict[str, Any]]
ErrorResponse = Callable[[str, str], dict[str, Any]]

# What each error status means on these routes, by (status, route family).
ERRORS = {
    ("400", "stacks"): "a field, config key, TTL or name is invalid (`parameter` names it); "
                       "nothing was started",
    ("400", "page"): "a query parameter (limit, after, show_secrets) is invalid",
    ("403", "stacks"): "revealing secrets needs INFRA_API_TOKEN set and sent",
    ("404", "stacks"): "no such stack",
    ("404", "operations"): "no such operation (or forgotten after INFRA_API_EVENT_RETENTION)",
    ("409", "stacks"): "the name is taken, the stack runs another operation (`operation` "
                       "names it), or its program left the catalog (it can only be deleted)",
    ("409", "reveal"): "the stack's program left the catalog: its outputs are not read",
    ("409", "cancel"): "the operation already ended, or is a destroy or an expiry (never "
                       "stopped half-way)",
    ("411", "stacks"): "a chunked body sent to the development server (`python infra_api.py`), "
                       "which reads only bodies with a Content-Length (gunicorn reads both)",
    ("413", "stacks"): "the body is larger than 64 KiB",
    ("415", "stacks"): "the body is not JSON",
    ("422", "stacks"): "the Idempotency-Key was used with another request body",
    ("502", "stacks"): "reading the stack's outputs failed",
    ("503", "stacks"): "the operation store or the workflow service is unavailable",
    ("503", "streams"): "this process serves its most event streams",
}

def _ttl(max_ttl: float) -> dict[str, Any]:
    # A duration's bound cannot be stated in JSON Schema: above INFRA_API_MAX_TTL it is a 400.
    return {"oneOf": [{"type": "integer", "minimum": 1, "maximum": int(max_ttl),
                       "description": "seconds"},
                      {"type": "string", "pattern": _DURATION,
                       "description": "an ISO 8601 duration in weeks, days, hours, minutes and "
                                      "seconds, such as PT30M or P1D"}],
            "description": f"time to live, at most INFRA_API_MAX_TTL ({max_ttl:g} s); at "
                           "expiry the stack is destroyed and removed (an expire operation)"}


_DURATION = r"^P(?!$)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$"
# A generated or given stack name; burner-<16 hex> names belong to the value routes.
_NAME = r"^(?!burner-[0-9a-f]{16}$)[a-z][a-z0-9-]{0,62}$"
_ISO = {"type": "string", "format": "date-time"}
_ISO_OR_NULL = {"type": ["string", "null"], "format": "date-time"}


# How a 202 answer leads to the next calls (schemathesis follows these in its stateful phase).
_BY_STACK = {"stack": "$response.body#/stack"}
_BY_OPERATION = {"operation": "$response.body#/operation/id"}
_LINKS = {
    "GetStack": {"operationId": "getStack", "parameters": _BY_STACK},
    "UpdateStack": {"operationId": "updateStack", "parameters": _BY_STACK},
    "DeleteStack": {"operationId": "deleteStack", "parameters": _BY_STACK},
    "GetOperation": {"operationId": "getOperation", "parameters": _BY_OPERATION},
    "OperationEvents": {"operationId": "operationEvents", "parameters": _BY_OPERATION},
    "CancelOperation": {"operationId": "cancelOperation", "parameters": _BY_OPERATION},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_PAGE = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                "page size"),
         _query("after", {"type": "string"}, "the `next` cursor of the previous page")]


def create_body(programs: Sequence[Program], max_ttl: float) -> dict[str, Any]:
    """The POST /stacks body: one branch per catalog program, its config schema inside."""
    branches = []
    for program in programs:
        config = program.json_schema()
        branches.append({
            "type": "object", "required": ["program"] + (["config"] if config["required"] else []),
            "additionalProperties": False,
            "properties": {"program": {"const": program.name}, "config": config,
                           "ttl": _ttl(max_ttl),
                           "name": {"type": "string", "pattern": _NAME,
                                    "description": "the stack's name; generated if absent"}}})
    return {"oneOf": branches} if branches else {"type": "object"}


def update_config(programs: Sequence[Program]) -> dict[str, Any]:
    """The PATCH config: keys to change, of the stack's program (here: of any program)."""
    keys: dict[str, Any] = {}
    for program in programs:
        for name, schema in program.json_schema()["properties"].items():
            keys.setdefault(name, {key: value for key, value in schema.items()
                                   if key != "default"})
    return {"type": "object", "additionalProperties": False, "properties": keys,
            "description": "config keys to change, merged over the current ones; each must be "
                           "a key of the stack's own program (see /programs/{program})"}


def stack_paths(programs: Sequence[Program], max_ttl: float, respond: Respond,
                error: ErrorResponse,
                operation: Callable[[str, str, dict[str, Any]], dict[str, Any]]
                ) -> dict[str, Any]:
    """The paths of the stack and operation routes."""
    def accepted(links: tuple[str, ...]) -> dict[str, Any]:
        response = respond("accepted; follow the operation at Location", _ref("Accepted"))
        response["headers"]["Location"] = {"description": "the operation's URL",
                                           "required": True, "schema": {"type": "string"}}
        response["links"] = {name: _LINKS[name] for name in links}
        return {"202": response}

    body = {"required": True, "content": {"application/json": {"schema": create_body(programs, max_ttl)}}}
    update_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {"config": update_config(programs), "ttl": _ttl(max_ttl)}}}}}
    stack = [_path_parameter("stack")]
    op = [_path_parameter("operation")]
    events_200 = respond("the events: an SSE stream, or a JSON page with Accept: "
                                "application/json", _ref("Events"))
    events_200["content"]["text/event-stream"] = {"schema": {
        "type": "object", "required": ["id", "event", "data"],
        "description": "one Server-Sent Event per operation event; `: keep-alive` comments "
                       "between them; the stream ends after the final status event",
        "properties": {"id": {"type": "string", "pattern": "^[0-9]+$",
                              "description": "the event's seq (resume with Last-Event-ID)"},
                       "event": {"enum": EVENT_TYPES},
                       "data": {"type": "string", "contentMediaType": "application/json",
                                "description": "the Event as JSON"}}}}
    return {
        "/stacks": {
            "post": {**operation("createStack", "Create a stack of a catalog program "
                                 "(asynchronous)", {
                                     **accepted(("GetStack", "UpdateStack", "DeleteStack",
                                                 "GetOperation", "OperationEvents",
                                                 "CancelOperation")), "400": error("400", "stacks"),
                                     "409": error("409", "stacks"), "411": error("411", "stacks"),
                                     "413": error("413", "stacks"),
                                     "415": error("415", "stacks"), "422": error("422", "stacks"),
                                     "503": error("503", "stacks")}),
                     "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                     "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                                     "description": "the same key and body return the same "
                                                    "operation; another body gets 422"}],
                     "requestBody": body},
            "get": {**operation("listStacks", "List stacks by name", {
                "200": respond("a page of stacks", _ref("Stacks")),
                "400": error("400", "page")}),
                "parameters": [_query("program", {"type": "string"}, "only this program's"),
                               _query("status", {"type": "string", "enum": STACK_STATUSES},
                                      "only stacks in this status"), *_PAGE]},
        },
        "/stacks/{stack}": {
            "get": {**operation("getStack", "One stack: config and outputs (secrets masked)", {
                "200": respond("the stack", _ref("Stack")),
                "400": error("400", "page"), "403": error("403", "stacks"),
                "404": error("404", "stacks"), "409": error("409", "reveal"),
                "502": error("502", "stacks"), "503": error("503", "stacks")}),
                "parameters": [*stack, _query("show_secrets", {"type": "boolean"},
                                              "reveal secret outputs (needs INFRA_API_TOKEN)")]},
            "patch": {**operation("updateStack", "Update the stack's config or TTL (an up)", {
                **accepted(("GetStack", "GetOperation", "OperationEvents", "CancelOperation")), "400": error("400", "stacks"), "404": error("404", "stacks"),
                "409": error("409", "stacks"), "411": error("411", "stacks"),
                "413": error("413", "stacks"),
                "415": error("415", "stacks"), "503": error("503", "stacks")}),
                "parameters": stack, "requestBody": update_body},
            "delete": {**operation("deleteStack", "Destroy the stack and remove it", {
                **accepted(("GetStack", "GetOperation", "OperationEvents")), "404": error("404", "stacks"), "409": error("409", "stacks"),
                "503": error("503", "stacks")}),
                "parameters": stack},
        },
        "/operations": {"get": {**operation("listOperations", "Operations, newest first", {
            "200": respond("a page of operations", _ref("Operations")),
            "400": error("400", "page")}),
            "parameters": [_query("stack", {"type": "string"}, "only this stack's"), *_PAGE]}},
        "/operations/{operation}": {"get": {**operation("getOperation", "One operation", {
            "200": respond("the operation", _ref("Operation")),
            "404": error("404", "operations")}), "parameters": op}},
        "/operations/{operation}/events": {"get": {
            **operation("operationEvents", "The operation's engine events and status changes", {
                "200": events_200, "400": error("400", "page"),
                "404": error("404", "operations"), "503": error("503", "streams")}),
            "parameters": [*op, *_PAGE[:1],
                           _query("after", {"type": "integer", "minimum": 0},
                                  "only events after this sequence number (Last-Event-ID too)"),
                           {"name": "Last-Event-ID", "in": "header", "required": False,
                            "schema": {"type": "string", "pattern": "^[0-9]+$"},
                            "description": "resume after this event"},
                           _query("ticket", {"type": "string"},
                                  "a stream ticket, instead of the bearer header")]}},
        "/operations/{operation}/cancel": {"post": {
            **operation("cancelOperation", "Cancel a queued or running create, update or burn", {
                "202": respond("cancel requested", _ref("Operation")),
                "404": error("404", "operations"), "409": error("409", "cancel"),
                "503": error("503", "stacks")}),
            "parameters": op}},
        "/operations/{operation}/stream-ticket": {"post": {
            **operation("streamTicket", "A short-lived ticket that opens this operation's "
                        "event stream without a header (EventSource)", {
                            "200": respond("the ticket", _ref("Ticket")),
                            "404": error("404", "operations")}),
            "parameters": op}},
    }


def stack_schemas() -> dict[str, Any]:
    """The component schemas of the stack and operation routes."""
    error = {"type": ["object", "null"], "required": ["code", "message"],
             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
    operation = {
        "type": "object", "additionalProperties": False,
        "required": ["id", "kind", "status", "stack", "program", "created", "started",
                     "finished", "error", "outputs"],
        "properties": {"id": {"type": "string"}, "kind": {"enum": OPERATION_KINDS},
                       "status": {"enum": OPERATION_STATUSES}, "stack": {"type": "string"},
                       "program": {"type": "string"}, "created": _ISO, "started": _ISO_OR_NULL,
                       "finished": _ISO_OR_NULL, "error": error,
                       "outputs": {"type": ["object", "null"],
                                   "description": "secret values as \"[secret]\""}}}
    stack = {
        "type": "object", "additionalProperties": False,
        "required": ["name", "program", "status", "config", "outputs", "created", "updated",
                     "expires", "last_operation"],
        "properties": {"name": {"type": "string"}, "program": {"type": "string"},
                       "status": {"enum": STACK_STATUSES},
                       "config": {"type": "object", "description": "secret keys as \"[secret]\""},
                       "outputs": {"type": ["object", "null"]}, "created": _ISO,
                       "updated": _ISO, "expires": _ISO_OR_NULL,
                       "last_operation": {"type": "string"}}}
    event = {"type": "object", "additionalProperties": False,
             "required": ["seq", "time", "type", "data"],
             "properties": {"seq": {"type": "integer", "minimum": 1}, "time": _ISO,
                            "type": {"enum": EVENT_TYPES}, "data": {"type": "object"}}}

    def page(name: str, item: str) -> dict[str, Any]:
        return {"type": "object", "required": [name, "next"], "additionalProperties": False,
                "properties": {name: {"type": "array", "items": _ref(item)},
                               "next": {"type": ["string", "null"]}}}

    return {
        "Operation": operation, "Stack": stack, "Event": event,
        "Accepted": {"type": "object", "required": ["operation", "stack"],
                     "additionalProperties": False,
                     "properties": {"operation": _ref("Operation"), "stack": {"type": "string"}}},
        "Stacks": page("stacks", "Stack"), "Operations": page("operations", "Operation"),
        "Events": {"type": "object", "required": ["events", "next"], "additionalProperties": False,
                   "properties": {"events": {"type": "array", "items": _ref("Event")},
                                  "next": {"type": ["integer", "null"]}}},
        "Ticket": {"type": "object", "required": ["ticket", "expires_in"],
                   "additionalProperties": False,
                   "properties": {"ticket": {"type": "string"},
                                  "expires_in": {"type": "integer"}}},
    }
