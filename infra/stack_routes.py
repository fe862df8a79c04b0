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
from infra.web import issue_ticket

MAX_BODY_BYTES = 64 * 1024
STREAM_SECONDS = 300.0
KEEPALIVE_SECONDS = 10.0
POLL_SECONDS = 0.2
# Each open stream holds a server thread: past this many per process, new streams wait.
MAX_STREAMS = 16
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
    if (req.content_length or 0) > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(description=f"the body is limited to {MAX_BODY_BYTES} bytes")
    try:
        return req.get_media()
    except falcon.MediaNotFoundError:
        raise ParameterError("body", "", "a JSON object") from None
    except falcon.MediaMalformedError:
        raise ParameterError("body", "(not JSON)", "a JSON object") from None


def _page(req: falcon.Request) -> tuple[int, str | None]:
    raw = req.get_param("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ParameterError("limit", raw, f"an integer from 1 to {MAX_PAGE}")
    return int(raw), req.get_param("after") or None


def _flag(req: falcon.Request, name: str) -> bool:
    raw = (req.get_param(name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ParameterError(name, raw, "true or false")
    return raw in ("true", "1")


class StacksResource:
    """/stacks and /stacks/{stack}: create, list, read, update, destroy."""

    def __init__(self, control: StackControl) -> None:
        self._control = control

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create a stack of a catalog program (asynchronously)."""
        operation, _ = self._control.create(_body(req), req.get_header("Idempotency-Key"))
        _accepted(resp, {"operation": operation.to_json(), "stack": operation.stack},
                  operation.id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """List stacks, by name, optionally of one program or status."""
        limit, after = _page(req)
        status = req.get_param("status")
        if status is not None and status not in STACK_STATUSES:
            raise ParameterError("status", status, "one of " + ", ".join(STACK_STATUSES))
        stacks, cursor = self._control.stacks(req.get_param("program"), status, limit, after)
        resp.media = {"stacks": [stack.to_json() for stack in stacks], "next": cursor}

    def on_get_stack(self, req: falcon.Request, resp: falcon.Response, stack: str) -> None:
        """One stack (``show_secrets=true`` reveals secret outputs to an authorised caller)."""
        resp.media = self._control.stack(stack, _flag(req, "show_secrets"))

    def on_patch_stack(self, req: falcon.Request, resp: falcon.Response, stack: str) -> None:
        """Update the stack's config (merged) or TTL: an ``up``."""
        operation = self._control.update(stack, _body(req))
        _accepted(resp, {"operation": operation.to_json(), "stack": stack}, operation.id)

    def on_delete_stack(self, req: falcon.Request, resp: falcon.Response, stack: str) -> None:
        """Destroy the stack's resources and remove it."""
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
        limit, after = _page(req)
        operations, cursor = self._control.operations(req.get_param("stack"), limit, after)
        resp.media = {"operations": [op.to_json() for op in operations], "next": cursor}

    def on_get_operation(self, req: falcon.Request, resp: falcon.Response, operation: str
                         ) -> None:
        """One operation."""
        resp.media = self._control.operation(operation).to_json()

    def on_post_cancel(self, req: falcon.Request, resp: falcon.Response, operation: str) -> None:
        """Cancel a queued or running create, update or burn."""
        record = self._control.cancel(operation)
        resp.status = falcon.HTTP_202
        resp.media = record.to_json()

    def on_post_ticket(self, req: falcon.Request, resp: falcon.Response, operation: str) -> None:
        """A short-lived ticket that lets an EventSource (no headers) open this stream."""
        self._control.operation(operation)
        resp.media = {"ticket": issue_ticket(self._token, operation, time.time(), TICKET_SECONDS),
                      "expires_in": TICKET_SECONDS}

    def on_get_events(self, req: falcon.Request, resp: falcon.Response, operation: str) -> None:
        """The operation's events: an SSE stream, or pages of JSON with Accept: application/json."""
        after = self._after(req)
        limit, _ = _page(req)  # checked for the stream too: a bad one is a 400 either way
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
    def _after(req: falcon.Request) -> int:
        """Where to resume: the Last-Event-ID a reconnecting EventSource sends, else ``after``."""
        found = 0
        for name, raw in (("after", req.get_param("after")),
                          ("Last-Event-ID", req.get_header("Last-Event-ID"))):
            if raw is None:
                continue
            if not raw.isdigit():
                raise ParameterError(name, raw[:100], "an event sequence number (0 or more)")
            found = int(raw)
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
