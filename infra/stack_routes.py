"""The stacks-as-a-service routes: /stacks, /operations, and each operation's event stream.

Events stream as Server-Sent Events from a plain WSGI generator: one ``id:`` per event (its
sequence number), ``Last-Event-ID`` resumes, a comment every few seconds keeps proxies from
closing an idle stream, and the stream ends with the operation's final status (or after
``STREAM_SECONDS``; the client's reconnect resumes where it stopped).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import falcon

from infra.control import MAX_PAGE, StackControl
from infra.errors import OverloadedError, ParameterError
from infra.openapi_stacks import STACK_STATUSES
from infra.store import FINAL, EventRecord
from infra.web import count, issue_ticket, single_values

MAX_BODY_BYTES = 64 * 1024
STREAM_SECONDS = 300.0
KEEPALIVE_SECONDS = 10.0
POLL_SECONDS = 0.2
# Each open stream holds a server thread: past this many per process, new streams get 503,
# so that streams never take all of gunicorn's threads (see gunicorn.conf.py).
MAX_STREAMS = 4
TICKET_SECONDS = 60


class StreamsBusyError(OverloadedError):
    """Raised when this process already serves its most event streams."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit, retry_after=2)
        self.args = (f"all {limit} event streams of this process are open",)


def _accepted(resp: falcon.Response, body: dict[str, Any], operation: str) -> None:
    resp.status = falcon.HTTP_202
    resp.location = f"/operations/{operation}"
    resp.media = body


def _body(req: falcon.Request) -> Any:
    """The request's JSON body: at most MAX_BODY_BYTES, with or without a Content-Length."""
    too_large = falcon.HTTPContentTooLarge(
        description=f"the body is limited to {MAX_BODY_BYTES} bytes")
    if req.content_length is not None:
        if req.content_length > MAX_BODY_BYTES:
            raise too_large
        raw = req.bounded_stream.read()
    elif req.get_header("Transfer-Encoding") is not None:
        # A chunked body can be read to its end only where the server ends the stream there
        # (gunicorn does; the development server's wsgiref would wait for more).
        if not req.env.get("wsgi.input_terminated"):
            raise falcon.HTTPLengthRequired(
                description="this server reads only bodies sent with a Content-Length")
        raw = req.stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise too_large
    else:
        raw = b""
    # Without a Content-Type the body is taken for JSON, as falcon's default media type.
    if raw and req.content_type is not None and not _is_json(req.content_type):
        raise falcon.HTTPUnsupportedMediaType(description="the body must be application/json")
    try:
        return json.loads(raw)
    except ValueError:
        raise ParameterError("body", "(not JSON)" if raw else "", "a JSON object") from None


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == falcon.MEDIA_JSON


def _params(req: falcon.Request, *known: str) -> dict[str, str]:
    """The query's parameters: each one of ``known``, given once and not blank."""
    params = single_values(req.params)
    for name, value in sorted(params.items()):
        if name not in known:
            raise ParameterError(name, value[:100], "the parameters of this route, which are: "
                                                    + (", ".join(known) or "none"))
        if not value:
            raise ParameterError(name, "", "a value")
    return params


def _page(params: dict[str, str]) -> tuple[int, str | None]:
    raw = params.get("limit", "50")
    limit = count(raw)
    if limit is None or not 1 <= limit <= MAX_PAGE:
        raise ParameterError("limit", raw[:100], f"an integer from 1 to {MAX_PAGE}")
    return limit, params.get("after")


def _flag(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ParameterError(name, raw[:100], "true or false")
    return raw in ("true", "1")


class StacksResource:
    """/stacks and /stacks/{stack}: create, list, read, update, destroy."""

    def __init__(self, control: StackControl) -> None:
        self._control = control

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create a stack of a catalog program (asynchronously)."""
        _params(req)
        operation, _ = self._control.create(_body(req), req.get_header("Idempotency-Key"))
        _accepted(resp, {"operation": operation.to_json(), "stack": operation.stack},
                  operation.id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """List stacks, by name, optionally of one program or status."""
        params = _params(req, "limit", "after", "program", "status")
        limit, after = _page(params)
        status = params.get("status")
        if status is not None and status not in STACK_STATUSES:
            raise ParameterError("status", status[:100], "one of " + ", ".join(STACK_STATUSES))
        stacks, cursor = self._control.stacks(params.get("program"), status, limit, after)
        resp.media = {"stacks": [stack.to_json() for stack in stacks], "next": cursor}

    def on_get_stack(self, req: falcon.Request, resp: falcon.Response, stack: str) -> None:
        """One stack (``show_secrets=true`` reveals secret outputs to an authorised caller)."""
        resp.media = self._control.stack(stack, _flag(_params(req, "show_secrets"),
                                                      "show_secrets"))

    def on_patch_stack(self, req: falcon.Request, resp: falcon.Response, stack: str) -> None:
        """Update the stack's config (merged) or TTL: an ``up``."""
        _params(req)
        operation = self._control.update(stack, _body(req))
        _accepted(resp, {"operation": operation.to_json(), "stack": stack}, operation.id)

    def on_delete_stack(self, req: falcon.Request, resp: falcon.Response, stack: str) -> None:
        """Destroy the stack's resources and remove it."""
        _params(req)
        operation = self._control.delete(stack)
        _accepted(resp, {"operation": operation.to_json(), "stack": stack}, operation.id)


class OperationsResource:
    """/operations, /operations/{operation}, its events, cancel and stream ticket."""

    def __init__(self, control: StackControl, token: str | None) -> None:
        self._control = control
        self._token = token
        self._streams = threading.BoundedSemaphore(MAX_STREAMS)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """List operations, newest first, optionally of one stack."""
        params = _params(req, "limit", "after", "stack")
        limit, after = _page(params)
        operations, cursor = self._control.operations(params.get("stack"), limit, after)
        resp.media = {"operations": [op.to_json() for op in operations], "next": cursor}

    def on_get_operation(self, req: falcon.Request, resp: falcon.Response, operation: str
                         ) -> None:
        """One operation."""
        _params(req)
        resp.media = self._control.operation(operation).to_json()

    def on_post_cancel(self, req: falcon.Request, resp: falcon.Response, operation: str) -> None:
        """Cancel a queued or running create, update or burn."""
        _params(req)
        record = self._control.cancel(operation)
        resp.status = falcon.HTTP_202
        resp.media = record.to_json()

    def on_post_ticket(self, req: falcon.Request, resp: falcon.Response, operation: str) -> None:
        """A short-lived ticket that lets an EventSource (no headers) open this stream."""
        _params(req)
        self._control.operation(operation)
        resp.media = {"ticket": issue_ticket(self._token, operation, time.time(), TICKET_SECONDS),
                      "expires_in": TICKET_SECONDS}

    def on_get_events(self, req: falcon.Request, resp: falcon.Response, operation: str) -> None:
        """The operation's events: an SSE stream, or pages of JSON with Accept: application/json."""
        params = _params(req, "after", "limit", "ticket")
        after = self._after(params, req.get_header("Last-Event-ID"))
        limit, _ = _page(params)  # checked for the stream too: a bad one is a 400 either way
        if req.client_prefers(["text/event-stream", falcon.MEDIA_JSON]) == falcon.MEDIA_JSON:
            events = self._control.events(operation, after, limit)
            final = self._control.operation(operation).status in FINAL
            more = len(events) == limit or not final
            resp.media = {"events": [event.to_json() for event in events],
                          "next": (events[-1].seq if events else after) if more else None}
            return
        self._control.operation(operation)
        if not self._streams.acquire(blocking=False):
            raise StreamsBusyError(MAX_STREAMS)
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-store")
        # Proxies such as nginx would otherwise hold events back in their buffers.
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = _Stream(self._stream(operation, after), self._streams.release)

    def _stream(self, operation: str, after: int) -> Iterator[bytes]:
        yield b"retry: 2000\n\n"
        ends = time.monotonic() + STREAM_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < ends:
            events = self._control.store.events(operation, after, 100)
            for event in events:
                after = event.seq
                yield _sse(event)
                if event.type == "status" and event.data.get("status") in FINAL:
                    return
            if events:
                quiet_since = time.monotonic()
                continue
            record = self._control.store.get_operation(operation)
            if record is None or (record.status in FINAL
                                  and not self._control.store.events(operation, after, 1)):
                return
            if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _after(params: dict[str, str], last_event_id: str | None) -> int:
        """Where to resume: the Last-Event-ID a reconnecting EventSource sends, else ``after``."""
        found = 0
        for name, raw in (("after", params.get("after")), ("Last-Event-ID", last_event_id)):
            if raw is None:
                continue
            seq = count(raw)
            if seq is None:
                raise ParameterError(name, raw[:100], "an event sequence number (0 or more)")
            found = seq
        return found


class _Stream:
    """The response iterable: the server calls ``close`` when the stream ends or the client
    leaves, even if it never iterated; that frees the stream's slot."""

    def __init__(self, events: Iterator[bytes], release: Callable[[], None]) -> None:
        self._events = events
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        """Stop the generator and free the slot, once."""
        getattr(self._events, "close", lambda: None)()
        release, self._release = self._release, None
        if release is not None:
            release()


def _sse(event: EventRecord) -> bytes:
    data = json.dumps(event.to_json(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()
