"""HTTP plumbing shared by every route: request ids, auth, metrics and the one error mapping,
and the dev server's request handler."""

from __future__ import annotations

import hashlib
import hmac
import http
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import falcon

from infra import logs
from infra.errors import (
    ConflictError,
    EngineError,
    ForbiddenError,
    IdempotencyError,
    InfraError,
    NotFoundError,
    OverloadedError,
    ParameterError,
    UnauthorizedError,
)
from infra.metrics import Metrics

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is echoed only if it is short and plain: it goes into log lines and headers.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # always fullmatch: $ allows a "\n"
OPEN_PATHS = frozenset({"/healthz"})
# The methods HTTP defines: any other never becomes a metric label.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                          "CONNECT"})
# Methods a resource may answer, in the order an Allow header lists them.
RESPONDER_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")
_EVENTS_PATH = re.compile(r"/operations/(?P<operation>[^/]+)/events")


def single_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters by name; raise ParameterError on one given more than once."""
    values = {}
    for name, value in params.items():
        if not isinstance(value, str):
            raise ParameterError(name, ",".join(value), "a single value")
        values[name] = value
    return values


def issue_ticket(token: str | None, operation: str, now: float, seconds: int) -> str:
    """A ticket that opens ``operation``'s event stream until ``now + seconds``.

    EventSource cannot send an Authorization header, and a token must never sit in a URL
    (logs, history): the ticket is bound to one stream, expires soon, and is signed with a key
    derived from the token.
    """
    expires = int(now) + seconds
    return f"{expires}.{_ticket_mac(token, operation, expires)}"


def ticket_valid(token: str | None, operation: str, ticket: str, now: float) -> bool:
    """Whether ``ticket`` was issued for ``operation`` with this token and is still fresh."""
    expires_text, _, mac = ticket.partition(".")
    expires = count(expires_text)
    if expires is None or expires < now or not mac.isascii():
        return False
    return hmac.compare_digest(mac, _ticket_mac(token, operation, expires))


def count(text: str) -> int | None:
    """``text`` as a whole number if it is one in plain ASCII digits that a database integer
    holds (``str.isdigit`` also takes "²"); None otherwise."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return None
    return int(text)


def _ticket_mac(token: str | None, operation: str, expires: int) -> str:
    key = hashlib.sha256(b"burner-api stream ticket\0" + (token or "").encode()).digest()
    return hmac.new(key, f"{operation}\0{expires}".encode(), hashlib.sha256).hexdigest()


class RequestContext:
    """Gives every request an id (echoed or generated), binds it to logs, counts the result."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._allowed: dict[str, list[str]] = {}

    def add_route(self, app: falcon.App, template: str, resource: object,
                  suffix: str | None = None) -> None:
        """Add a route, remembering its methods for the 405 answer to invented ones."""
        app.add_route(template, resource, suffix=suffix)
        ending = f"_{suffix}" if suffix else ""
        self._allowed[template] = [method for method in RESPONDER_METHODS
                                   if hasattr(resource, f"on_{method.lower()}{ending}")
                                   ] + ["OPTIONS"]

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Pick the request id and start the clock."""
        given = req.get_header(REQUEST_ID_HEADER) or ""
        req.context.request_id = given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
        req.context.started = time.perf_counter()
        req.context.log_token = logs.request_id.set(req.context.request_id)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         params: dict[str, Any]) -> None:
        """Answer an invented method on a route as any other missing one: 405, not falcon's 400."""
        if resource is not None and req.method not in HTTP_METHODS:
            raise falcon.HTTPMethodNotAllowed(self._allowed.get(req.uri_template or "",
                                                                ["GET", "OPTIONS"]))

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        """Echo the id, record metrics, log one line, and unbind the id."""
        resp.set_header(REQUEST_ID_HEADER, req.context.request_id)
        allowed = self._allowed.get(req.uri_template or "")
        if req.method == "OPTIONS" and allowed and resp.status_code == 200:
            # Falcon's own OPTIONS answer leaves OPTIONS out; a 405 lists it.
            resp.set_header("Allow", ", ".join(allowed))
        seconds = time.perf_counter() - req.context.started
        # Every label from a closed set: a value the client chose would add a series each time.
        route = req.uri_template or "unmatched"
        method = req.method if req.method in HTTP_METHODS else "other"
        status = resp.status_code
        self._metrics.requests.labels(route, method, str(status)).inc()
        self._metrics.request_seconds.labels(route).observe(seconds)
        logger.info("%s -> %d in %.0f ms", _where(req), status, seconds * 1000)
        logs.request_id.reset(req.context.log_token)


class BearerAuth:
    """Requires ``Authorization: Bearer <token>`` on every route except ``/healthz``.

    The portal's static files under ``/ui/`` are not routes but a sink (``infra.portal``): falcon
    calls no ``process_resource`` for a sink, so they need no token; they hold no data.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         params: dict[str, Any]) -> None:
        """Raise UnauthorizedError unless the request carries the token (after routing)."""
        if req.path in OPEN_PATHS:
            return
        events = _EVENTS_PATH.fullmatch(req.path)
        ticket = req.get_param("ticket")
        if events is not None and ticket is not None and req.method == "GET":
            if ticket_valid(self._token.decode(), events["operation"], ticket, time.time()):
                return
            raise UnauthorizedError("the stream ticket is invalid or expired: ask "
                                    "POST /operations/{operation}/stream-ticket for a new one")
        scheme, _, credential = (req.get_header("Authorization") or "").partition(" ")
        # compare_digest takes the same time wherever the first difference is.
        if not (scheme.lower() == "bearer"
                and hmac.compare_digest(credential.strip().encode(), self._token)):
            raise UnauthorizedError("send the token as 'Authorization: Bearer <token>'")


class ErrorMapper:
    """Turns every error into a JSON body with a stable ``code`` and the request id, once."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def install(self, app: falcon.App) -> None:
        """Register the handlers and the serializer on ``app``."""
        app.set_error_serializer(self.serialize_http_error)
        app.add_error_handler(Exception, self.handle_unexpected)
        app.add_error_handler(InfraError, self.handle_infra_error)

    def handle_infra_error(self, req: falcon.Request, resp: falcon.Response, ex: InfraError,
                           params: dict[str, Any]) -> None:
        """Map the error tree: status and code come from the class, details from the instance."""
        body: dict[str, Any] = {"title": ex.title, "code": ex.code}
        if isinstance(ex, ParameterError):
            logger.info("rejected: %s", logs.escape(str(ex)))
            body.update(parameter=ex.parameter, value=ex.value, allowed=ex.allowed,
                        description=f"invalid {ex.parameter}={ex.value!r}; allowed: {ex.allowed}")
        elif isinstance(ex, UnauthorizedError):
            logger.warning("unauthorized: %s", _where(req))
            resp.set_header("WWW-Authenticate", 'Bearer realm="burner-api"')
            body["description"] = str(ex)
        elif isinstance(ex, OverloadedError):
            logger.warning("overloaded: %s", ex)
            self._metrics.rejected.inc()
            resp.set_header("Retry-After", str(ex.retry_after))
            body.update(retry_after=ex.retry_after, description=f"{ex}; retry later")
        elif isinstance(ex, ConflictError):
            logger.info("conflict: %s", ex)
            body["description"] = str(ex)
            if ex.operation is not None:
                body["operation"] = ex.operation
        elif isinstance(ex, (NotFoundError, ForbiddenError, IdempotencyError)):
            logger.info("%s: %s", ex.code, ex)
            body["description"] = str(ex)
        elif isinstance(ex, EngineError):
            # The exception chain carries the CLI's output: it goes to the log, never the body.
            logger.error("%s: %s", _where(req), ex, exc_info=ex)
            self._metrics.failures.labels(ex.code, ex.phase).inc()
            body.update(stack=ex.stack, phase=ex.phase,
                        description=f"the {ex.phase} step {_failure(ex)}; the server log has details")
        else:
            logger.error("%s: %s", _where(req), ex, exc_info=ex)
            self._metrics.failures.labels(ex.code, "-").inc()
            body["description"] = "see the server log"
            retry_after = getattr(ex, "retry_after", None)
            if retry_after is not None:
                resp.set_header("Retry-After", str(retry_after))
                body["retry_after"] = retry_after
        self._respond(req, resp, ex.status, body)

    def handle_unexpected(self, req: falcon.Request, resp: falcon.Response, ex: Exception,
                          params: dict[str, Any]) -> None:
        """Anything not raised on purpose: 500 with no detail, the traceback to the log."""
        if isinstance(ex, falcon.HTTPError):  # falcon's own 404/405/... keep their status
            raise ex
        logger.error("%s: unexpected error", _where(req), exc_info=ex)
        self._metrics.failures.labels("internal_error", "-").inc()
        self._respond(req, resp, 500, {"title": InfraError.title, "code": InfraError.code,
                                       "description": "see the server log"})

    def serialize_http_error(self, req: falcon.Request, resp: falcon.Response,
                             ex: falcon.HTTPError) -> None:
        """JSON for falcon's own errors (404, 405, ...) whatever the Accept header says."""
        body: dict[str, Any] = dict(ex.to_dict())
        body["code"] = code_of(ex.status_code)
        body.setdefault("description", ex.title)
        self._respond(req, resp, ex.status_code, body)

    @staticmethod
    def _respond(req: falcon.Request, resp: falcon.Response, status: int,
                 body: dict[str, Any]) -> None:
        resp.status = status
        resp.content_type = falcon.MEDIA_JSON
        body["request_id"] = getattr(req.context, "request_id", None) or uuid.uuid4().hex
        resp.media = body


def _where(req: falcon.Request) -> str:
    return f"{logs.escape(req.method)} {logs.escape(req.path)}"


def _failure(ex: EngineError) -> str:
    return "was cancelled at the request timeout" if ex.status == 504 else "failed"


def code_of(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"
