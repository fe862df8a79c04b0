"""The development server of ``python infra_api.py``: wsgiref with a thread per request.

Ctrl-C and SIGTERM both stop it the same way: no new connections, in-flight requests finish
(an idle or half-sent connection times out instead of holding the stop), then the service
drains its worker and stops the embedded Temporal server.
"""

from __future__ import annotations

import http
import json
import logging
import signal
import socketserver
import uuid
from types import FrameType
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

import falcon

from infra import logs
from infra.service import Service
from infra.settings import Settings
from infra.web import REQUEST_ID_HEADER, code_of

logger = logging.getLogger(__name__)

# A client that sends nothing for this long loses its connection (and its thread).
SOCKET_TIMEOUT_SECONDS = 10


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref server with a thread per request."""

    # Non-daemon threads, joined on close: in-flight requests finish before the worker stops.
    daemon_threads = False


# Names the software, never its version.
SERVER_HEADER = "burner-api"


class _ServerHandler(ServerHandler):
    server_software = SERVER_HEADER


class RequestHandler(WSGIRequestHandler):
    """An escaped access log through ``logging``, a banner without versions, JSON for the
    errors wsgiref answers itself (request line, 414, 431, 505), and a socket timeout."""

    timeout = SOCKET_TIMEOUT_SECONDS

    # An unparsable request line would otherwise get an HTTP/0.9 answer: no status, no headers.
    default_request_version = "HTTP/1.0"

    def version_string(self) -> str:
        """The ``Server`` header of the errors wsgiref answers itself."""
        return SERVER_HEADER

    def handle(self) -> None:
        """wsgiref's ``handle`` with our ``ServerHandler``, which names no Python version."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        # The ignores: typeshed's socket files and server type are narrower than wsgiref's own.
        handler = _ServerHandler(self.rfile, self.wfile,  # type: ignore[arg-type]
                                 self.get_stderr(), self.get_environ(), multithread=False)
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Answer as the app would: JSON with a code and a request id (the detail goes to the log)."""
        request_id = uuid.uuid4().hex
        with logs.bound(logs.request_id, request_id):
            self.log_error("code %d, message %s", code, message or "-")
            status = http.HTTPStatus(code)
            body = json.dumps({"title": f"{code} {status.phrase}", "code": code_of(code),
                               "description": status.description,
                               "request_id": request_id}).encode()
            self.send_response(code)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", falcon.MEDIA_JSON)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(REQUEST_ID_HEADER, request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """One access or error line through ``logging``, its client-chosen parts escaped."""
        logger.info("%s %s", self.address_string(), logs.escape(format % args))


def serve(settings: Settings) -> None:
    """Serve the API until Ctrl-C or SIGTERM, then drain and stop everything it started."""
    service = Service(settings)
    # Both signals stop the server the same way, even where a shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        # The port is taken before the service starts: the embedded Temporal server picks a
        # free port of its own, and until bound this one was free to pick.
        server = make_server(settings.host, settings.port, service.app(),
                             server_class=ThreadingWSGIServer, handler_class=RequestHandler)
        try:
            service.start()
            logger.info("serving on http://%s:%d (Ctrl-C to stop)", settings.host,
                        server.server_port)
            server.serve_forever()
        except KeyboardInterrupt:
            logger.info("stopping: waiting for in-flight requests")
        finally:
            server.server_close()
    finally:
        _ignore_signals()
        service.stop()
    logger.info("stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts: later ones must not cut short the wait for in-flight
    # requests, whose stacks still need their teardown.
    _ignore_signals()
    raise KeyboardInterrupt


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, _already_stopping)
    signal.signal(signal.SIGTERM, _already_stopping)


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    logger.warning("already stopping; waiting for in-flight requests to finish")
