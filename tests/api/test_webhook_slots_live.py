"""A webhook endpoint that hangs, against one worker with one slot for stack operations.

Through real HTTP: gunicorn, the embedded Temporal, the offline engine, and an endpoint in this
process that reads each attempt and then holds it, never answering, until the module ends.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

import pytest
import yaml

from infra.settings import PROJECT_ROOT, Settings
from tests.api.support import GUNICORN, all_stacks, call, create, finished, make_environ
from tests.harness import ServerProcess, free_port, running_server, wait_for

pytestmark = pytest.mark.slow

SANDBOX = {"owner": "ann", "access_key": "k"}


class HangingEndpoint:
    """Accepts webhook attempts and answers none of them until ``release``; notes which
    attempts the sender gave up on (closed) meanwhile."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.attempts: list[dict[str, bool]] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def held(self) -> list[dict[str, bool]]:
        """The attempts read in full and still held open by both sides."""
        with self.lock:
            return [a for a in self.attempts if a["read"] and not a["closed"]]

    def release(self) -> None:
        """Answer every held attempt (204) and every later one at once."""
        self.released.set()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            attempt = {"read": False, "closed": False}
            with self.lock:
                self.attempts.append(attempt)
            threading.Thread(target=self._hold, args=(conn, attempt), daemon=True).start()

    def _hold(self, conn: socket.socket, attempt: dict[str, bool]) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    attempt["closed"] = True
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            attempt["read"] = True
            while not self.released.is_set():
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable and not conn.recv(1):
                    attempt["closed"] = True   # the sender gave up on it
                    return
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[HangingEndpoint]:
    found = HangingEndpoint()
    yield found
    found.release()
    found.listener.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, endpoint: HangingEndpoint
           ) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("webhook-slots")
    hooks = root / "webhooks.yaml"
    hooks.write_text(yaml.safe_dump({"subscribers": [
        {"url": f"http://127.0.0.1:{endpoint.port}/hangs", "events": ["stack.created"],
         "secret": "s"}]}))
    environ = make_environ(root / "state", INFRA_API_HOST="127.0.0.1",
                           INFRA_API_PORT=str(free_port()), INFRA_API_WEBHOOKS_FILE=str(hooks),
                           INFRA_API_PROGRAMS=str(PROJECT_ROOT / "programs" / "sandbox"),
                           INFRA_API_WORKER_CONCURRENCY="1",
                           INFRA_API_WEBHOOK_CONCURRENCY="1",
                           GUNICORN_CMD_ARGS="--workers=1")   # one worker: one slot of each
    with running_server(GUNICORN, environ, root / "server.log") as process:
        yield process
        endpoint.release()   # the held attempts succeed, so the worker drains at once
    assert all_stacks(Settings.from_environ(environ)) == []


def test_a_webhook_endpoint_that_hangs_holds_no_slot_a_stack_operation_needs(server, endpoint):
    first, operation = create(server, program="sandbox", config=SANDBOX)
    assert finished(server, operation)["status"] == "succeeded"
    held = wait_for(endpoint.held, 60, "the endpoint to hold the stack.created attempt")[0]

    # The worker's one slot for stack operations is free although that attempt still runs.
    second, operation = create(server, program="sandbox", config=SANDBOX)
    assert finished(server, operation)["status"] == "succeeded"
    assert not held["closed"], "the attempt was cut short before the second create could run"
    assert len(endpoint.held()) == 1   # the second stack's attempt waits for the webhook slot

    endpoint.release()
    for stack in (first, second):
        _, _, body = call(server, "DELETE", f"/stacks/{stack}")
        assert finished(server, body["operation"]["id"])["status"] == "succeeded"
