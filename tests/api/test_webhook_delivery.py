"""One webhook delivery, run as Temporal runs the activity (temporalio's ActivityEnvironment)
against a real HTTP receiver on loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from infra.basic import Burner
from infra.catalog import Catalog
from infra.engine import select_engine
from infra.records import Records
from infra.settings import Settings
from infra.stack_activities import StackActivities
from infra.stacks import StackSteps
from infra.store import open_store
from infra.webhooks import EVENT_ID_HEADER, Subscriber
from infra.workflows import Delivery


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """An endpoint that accepts every delivery and notes each event id it got."""
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append(self.headers[EVENT_ID_HEADER] or "")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_a_delivery_accepted_after_its_operation_was_forgotten_is_not_sent_again(
        tmp_path, receiver):
    url, received = receiver
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    store = open_store(settings)
    records = Records(store, [Subscriber(url, frozenset({"stack.created"}), "s3cret")])
    burner = Burner(settings, select_engine(settings))
    activities = StackActivities(StackSteps(burner), Catalog(settings.programs), records)
    # The operation is not (or no longer) in the store: INFRA_API_EVENT_RETENTION passed.
    delivery = Delivery(0, "evt-1", "stack.created", "op-forgotten", '{"stack": "s"}')
    try:
        ActivityEnvironment().run(activities.deliver_webhook, delivery)  # no retry asked
    finally:
        store.close()
    assert received == ["evt-1"]
