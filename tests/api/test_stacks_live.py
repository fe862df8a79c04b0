"""Stacks as a service through real HTTP: gunicorn, the embedded Temporal, the offline engine.

One server for the module serves the sandbox program and a slow test program, and delivers
webhooks to a receiver in this process; each test works on stacks of its own.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import PROJECT_ROOT, Settings
from infra.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify
from tests.api.support import (
    AWKWARD_PROGRAM,
    GUNICORN,
    SLOW_PROGRAM,
    all_stacks,
    call,
    create,
    finished,
    force_remove,
    make_environ,
    post_chunked,
    read_stream,
)
from tests.harness import ServerProcess, free_port, running_server, wait_for

pytestmark = pytest.mark.slow

SANDBOX = {"owner": "ann", "access_key": "hunter2-key"}
# The awkward program's secrets: each must stay out of every answer, event and log line.
AWKWARD = {"token": "tok-5ecret-value", "keys": ["alpha-key-1", "beta-key-2"]}
AWKWARD_SECRETS = ("tok-5ecret-value", "alpha-key-1", "beta-key-2")
FLAKY_FAILURES = 3


class Receiver:
    """A webhook endpoint on loopback: /flaky fails the first attempts of each event, /steady
    accepts at once; every attempt is recorded."""

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event_id = self.headers[EVENT_ID_HEADER]
                with receiver.lock:
                    earlier = sum(1 for a in receiver.attempts
                                  if a["path"] == self.path and a["event_id"] == event_id)
                    receiver.attempts.append({"path": self.path, "event_id": event_id,
                                              "body": body, "time": time.time(),
                                              "signature": self.headers[SIGNATURE_HEADER]})
                failing = self.path == "/flaky" and earlier < FLAKY_FAILURES
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def of(self, path: str, stack: str) -> list[dict[str, Any]]:
        """The attempts at ``path`` whose event is about ``stack``."""
        with self.lock:
            return [a for a in self.attempts
                    if a["path"] == path and json.loads(a["body"])["stack"] == stack]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture(scope="module")
def environ(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> dict[str, str]:
    root = tmp_path_factory.mktemp("stacks")
    hooks = root / "webhooks.yaml"
    hooks.write_text(yaml.safe_dump({"subscribers": [
        {"url": f"http://127.0.0.1:{receiver.port}/flaky", "events": ["stack.created"],
         "secret": "flaky-secret"},
        {"url": f"http://127.0.0.1:{receiver.port}/steady",
         "events": ["stack.created", "stack.destroyed", "stack.expiring", "operation.failed"],
         "secret": "steady-secret"},
    ]}))
    return make_environ(root / "state", INFRA_API_HOST="127.0.0.1",
                        INFRA_API_PORT=str(free_port()), INFRA_API_WEBHOOKS_FILE=str(hooks),
                        INFRA_API_PROGRAMS=f"{PROJECT_ROOT / 'programs' / 'sandbox'}:"
                                           f"{SLOW_PROGRAM}:{AWKWARD_PROGRAM}",
                        INFRA_API_MAX_TTL="3600", INFRA_API_CANCEL_GRACE="5",
                        INFRA_API_LOG_LEVEL="DEBUG")


@pytest.fixture(scope="module")
def server(environ: dict[str, str]) -> Iterator[ServerProcess]:
    log_path = Path(environ["INFRA_API_STATE_DIR"]).parent / "server.log"
    with running_server(GUNICORN, environ, log_path) as process:
        yield process
    # Every test destroyed what it made: the backend holds no stack at all.
    assert all_stacks(Settings.from_environ(environ)) == []
    # A secret config value never reached a log line, at DEBUG either.
    log = log_path.read_text()
    assert "activity apply_stack: succeeded" in log
    assert [secret for secret in ("hunter2-key", *AWKWARD_SECRETS) if secret in log] == []


def test_a_stack_is_created_followed_read_updated_and_deleted(server):
    stack, operation = create(server, program="sandbox", config=SANDBOX)

    events = read_stream(server, operation)
    assert events[-1][1] == "status" and events[-1][2]["data"]["status"] == "succeeded"
    steps = [data["data"] for _, kind, data in events if kind == "resource"]
    assert {step["name"] for step in steps if step["step"] == "done"} >= {
        "sandbox-pet", "sandbox-password", "sandbox-id", "sandbox-tags"}
    assert any(kind == "summary" for _, kind, _ in events)
    assert "hunter2-key" not in json.dumps(events)

    status, _, body = call(server, "GET", f"/stacks/{stack}")
    assert status == 200
    assert body["status"] == "ready" and body["program"] == "sandbox"
    assert body["config"]["access_key"] == "[secret]" and body["config"]["owner"] == "ann"
    assert body["outputs"]["password"] == "[secret]"
    assert body["outputs"]["name"].startswith("ann-")
    assert body["last_operation"] == operation and body["expires"] is None
    first_name = body["outputs"]["name"]
    # Without INFRA_API_TOKEN nobody is authorised to see secrets.
    status, _, body = call(server, "GET", f"/stacks/{stack}?show_secrets=true")
    assert status == 403 and body["code"] == "forbidden"

    # A refused update repeats no value that may be a secret, misspelled key or not.
    for config in ({"acess_key": "new-key-1"}, {"access_key": ["new-key-2"]}):
        status, _, body = call(server, "PATCH", f"/stacks/{stack}", {"config": config})
        assert status == 400 and "new-key" not in json.dumps(body), body
    assert "new-key" not in server.output()

    status, _, accepted = call(server, "PATCH", f"/stacks/{stack}",
                               {"config": {"owner": "bob"}, "ttl": "PT30M"})
    assert status == 202
    update = finished(server, accepted["operation"]["id"])
    assert update["kind"] == "update" and update["status"] == "succeeded", update
    _, _, body = call(server, "GET", f"/stacks/{stack}")
    assert body["outputs"]["name"].startswith("bob-") and body["outputs"]["name"] != first_name
    assert body["config"]["access_key"] == "[secret]"  # kept from the create
    assert body["expires"] is not None

    status, _, accepted = call(server, "DELETE", f"/stacks/{stack}")
    assert status == 202
    destroy = finished(server, accepted["operation"]["id"])
    assert destroy["kind"] == "destroy" and destroy["status"] == "succeeded", destroy
    assert call(server, "GET", f"/stacks/{stack}")[0] == 404

    _, _, listed = call(server, "GET", f"/operations?stack={stack}")
    assert [op["kind"] for op in listed["operations"]] == ["destroy", "update", "create"]


def test_a_stack_with_a_ttl_expires_and_the_expiry_is_an_operation(server, receiver):
    stack, operation = create(server, program="sandbox", config=SANDBOX, ttl=3)
    assert finished(server, operation)["status"] == "succeeded"

    wait_for(lambda: call(server, "GET", f"/stacks/{stack}")[0] == 404, 120,
             "the stack to expire")
    _, _, listed = call(server, "GET", f"/operations?stack={stack}")
    kinds = {op["kind"]: op for op in listed["operations"]}
    assert set(kinds) == {"create", "expire"}
    assert kinds["expire"]["status"] == "succeeded"
    announced = wait_for(lambda: (lambda got: got if len(got) == 3 else None)(
        [json.loads(a["body"]) for a in receiver.of("/steady", stack)]), 30, "the webhooks")
    assert [event["type"] for event in announced] == [
        "stack.created", "stack.expiring", "stack.destroyed"]
    assert announced[2]["operation"]["id"] == kinds["expire"]["id"]


def test_a_name_is_free_again_as_soon_as_its_stack_is_gone(server):
    # The old stack's workflow may still be starting its webhook deliveries: the new create
    # waits for it instead of failing.
    for _ in range(2):
        stack, operation = create(server, program="sandbox", config=SANDBOX, name="again")
        assert finished(server, operation)["status"] == "succeeded"
        status, _, accepted = call(server, "DELETE", f"/stacks/{stack}")
        assert status == 202, accepted
        assert finished(server, accepted["operation"]["id"])["status"] == "succeeded"


def test_the_same_idempotency_key_returns_the_same_operation(server):
    key = {"Idempotency-Key": f"key-{time.time()}"}
    body = {"program": "sandbox", "config": SANDBOX, "ttl": 600}
    first = call(server, "POST", "/stacks", body, key)
    again = call(server, "POST", "/stacks", body, key)
    assert first[0] == again[0] == 202
    assert again[2]["operation"]["id"] == first[2]["operation"]["id"]
    assert again[2]["stack"] == first[2]["stack"]

    other = call(server, "POST", "/stacks", {**body, "ttl": 601}, key)
    assert other[0] == 422 and other[2]["code"] == "idempotency_key_reused"

    assert finished(server, first[2]["operation"]["id"])["status"] == "succeeded"
    _, _, listed = call(server, "GET", "/stacks?program=sandbox")
    assert [s["name"] for s in listed["stacks"]].count(first[2]["stack"]) == 1
    deleted = call(server, "DELETE", f"/stacks/{first[2]['stack']}")
    assert finished(server, deleted[2]["operation"]["id"])["status"] == "succeeded"


def test_a_second_operation_on_a_busy_stack_is_refused_naming_the_running_one(server):
    stack, operation = create(server, program="slow", config={"seconds": 5})

    status, _, body = call(server, "PATCH", f"/stacks/{stack}", {"config": {"seconds": 0}})
    assert status == 409 and body["code"] == "conflict"
    assert body["operation"] == operation
    status, _, body = call(server, "DELETE", f"/stacks/{stack}")
    assert status == 409 and body["operation"] == operation

    assert finished(server, operation)["status"] == "succeeded"
    deleted = call(server, "DELETE", f"/stacks/{stack}")
    assert finished(server, deleted[2]["operation"]["id"])["status"] == "succeeded"


def test_a_stream_resumed_with_last_event_id_loses_and_repeats_nothing(server):
    stack, operation = create(server, program="sandbox", config=SANDBOX)

    head = read_stream(server, operation, stop_after=3)
    tail = read_stream(server, operation, last_event_id=head[-1][0])
    _, _, page = call(server, "GET", f"/operations/{operation}/events?limit=100",
                      headers={"Accept": "application/json"})
    everything = [event["seq"] for event in page["events"]
                  if event["seq"] <= tail[-1][0]]
    assert [seq for seq, _, _ in head + tail] == everything == list(range(1, len(everything) + 1))

    deleted = call(server, "DELETE", f"/stacks/{stack}")
    assert finished(server, deleted[2]["operation"]["id"])["status"] == "succeeded"


def test_cancelling_a_create_during_up_leaves_nothing(server):
    stack, operation = create(server, program="slow")
    wait_for(lambda: _resources_done(server, operation), 120, "the resource to exist")

    status, _, body = call(server, "POST", f"/operations/{operation}/cancel")
    assert status == 202 and body["id"] == operation

    ended = finished(server, operation)
    assert ended["status"] == "cancelled" and ended["error"]["code"] == "cancelled"
    assert call(server, "GET", f"/stacks/{stack}")[0] == 404
    assert call(server, "POST", f"/operations/{operation}/cancel")[0] == 409


def _resources_done(server: ServerProcess, operation: str) -> bool:
    _, _, page = call(server, "GET", f"/operations/{operation}/events?limit=100",
                      headers={"Accept": "application/json"})
    return any(event["type"] == "resource" and event["data"]["step"] == "done"
               and event["data"]["name"] == "id" for event in page["events"])


def test_a_failing_subscriber_gets_one_successful_delivery_and_does_not_delay_another(
        server, receiver):
    stack, operation = create(server, program="sandbox", config=SANDBOX)
    assert finished(server, operation)["status"] == "succeeded"

    flaky = wait_for(lambda: (lambda got: got if len(got) > FLAKY_FAILURES else None)(
        receiver.of("/flaky", stack)), 120, "the flaky subscriber's delivery")
    steady = receiver.of("/steady", stack)
    assert len(steady) == 1 and len(flaky) == FLAKY_FAILURES + 1
    assert steady[0]["time"] < flaky[1]["time"]  # not held up by the other's retries
    for attempt, secret in [(a, "flaky-secret") for a in flaky] + [(steady[0], "steady-secret")]:
        assert verify(secret, attempt["signature"], attempt["body"])
    event = json.loads(flaky[-1]["body"])
    assert event["type"] == "stack.created" and event["operation"]["id"] == operation
    assert "hunter2-key" not in flaky[-1]["body"].decode()

    def deliveries() -> list[dict[str, Any]] | None:
        _, _, page = call(server, "GET", f"/operations/{operation}/events?limit=100",
                          headers={"Accept": "application/json"})
        found = [e["data"] for e in page["events"] if e["type"] == "webhook"]
        return found if len(found) == FLAKY_FAILURES + 2 else None
    recorded = wait_for(deliveries, 30, "the deliveries in the operation's events")
    to_flaky = [d for d in recorded if d["subscriber"].endswith("/flaky")]
    assert [d["outcome"] for d in to_flaky] == ["failed"] * FLAKY_FAILURES + ["succeeded"]
    assert [d["attempt"] for d in to_flaky] == [1, 2, 3, 4]

    deleted = call(server, "DELETE", f"/stacks/{stack}")
    assert finished(server, deleted[2]["operation"]["id"])["status"] == "succeeded"


@pytest.mark.parametrize(("config", "key"), [
    ({"owner": 7}, "owner"),                        # string
    ({"owner": "ann", "words": "two"}, "words"),      # integer
    ({"owner": "ann", "words": True}, "words"),       # a boolean is not an integer
    ({"owner": "ann", "special": "yes"}, "special"),  # boolean
    ({"owner": "ann", "tags": "red"}, "tags"),        # array
    ({"owner": "ann", "tags": [1, 2]}, "tags"),       # array items
    ({"owner": "ann", "colour": "red"}, "colour"),    # unknown key
    ({}, "owner"),                                    # required key missing
    ({"owner": "a\u0000b"}, "owner"),                 # a NUL cannot reach the engine
    ({"owner": "\ud800"}, "owner"),                   # nor can an unpaired surrogate
    ({"owner": "ann", "tags": ["\ud800"]}, "tags"),
    ({"owner": "ann", "\ud800": 1}, "\\ud800"),       # shown escaped, in a JSON body
])
def test_invalid_config_is_refused_naming_the_key(server, config, key):
    status, _, body = call(server, "POST", "/stacks", {"program": "sandbox", "config": config})
    assert status == 400, body
    assert body["code"] == "invalid_parameter" and body["parameter"] == key


@pytest.mark.parametrize(("fields", "parameter"), [
    ({"program": "nope"}, "program"),
    ({"program": "sandbox", "config": SANDBOX, "ttl": 0}, "ttl"),
    ({"program": "sandbox", "config": SANDBOX, "ttl": "P1Y"}, "ttl"),
    ({"program": "sandbox", "config": SANDBOX, "ttl": 7200}, "ttl"),  # above INFRA_API_MAX_TTL
    ({"program": "sandbox", "config": SANDBOX, "name": "Bad Name"}, "name"),
    ({"program": "sandbox", "config": SANDBOX, "name": "burner-0123456789abcdef"}, "name"),
    ({"program": "sandbox", "config": SANDBOX, "size": 3}, "size"),
    ({"program": "sandbox", "config": SANDBOX, "ttl": 10**309}, "ttl"),
    ({"program": "sandbox", "config": SANDBOX, "ttl": "P" + "1" * 309 + "D"}, "ttl"),
    ({"program": "\ud800"}, "program"),
])
def test_invalid_requests_are_refused_naming_the_field(server, fields, parameter):
    status, _, body = call(server, "POST", "/stacks", fields)
    assert status == 400 and body["parameter"] == parameter, body


@pytest.mark.parametrize(("content_type", "raw"), [
    ("application/x-www-form-urlencoded", b"program=sandbox&owner=ann"),
    ("multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="program"\r\n\r\nsandbox\r\n--b--\r\n'),
    ("text/plain", b"program=sandbox"),
])
def test_a_body_that_is_not_json_is_refused_as_unsupported(server, content_type, raw):
    status, _, body = call(server, "POST", "/stacks", headers={"Content-Type": content_type},
                           raw=raw)
    assert status == 415 and body["code"] == "unsupported_media_type", body


@pytest.mark.parametrize("config", [
    {"owner": "ann", "access_key": 424242424242},      # a secret key of the wrong type
    {"owner": "ann", "acess_key": "424242424242"},     # a secret key misspelled
])
def test_a_refused_config_value_that_may_be_a_secret_is_never_repeated(server, config):
    status, _, body = call(server, "POST", "/stacks", {"program": "sandbox", "config": config})
    assert status == 400 and body["code"] == "invalid_parameter", body
    assert "424242424242" not in json.dumps(body)
    assert "424242424242" not in server.output()


def test_a_chunked_body_is_read_and_held_to_the_same_limit(server):
    # No Content-Length: gunicorn ends the body where the chunks end.
    status, body = post_chunked(server, "/stacks", [b'{"program": ', b'"nope"}'])
    assert status == 400 and body["parameter"] == "program", body
    status, body = post_chunked(server, "/stacks", [b" " * 40_000] * 2)
    assert status == 413 and body["code"] == "request_entity_too_large", body


def test_unknown_stacks_and_operations_are_404(server):
    assert call(server, "GET", "/stacks/no-such-stack")[0] == 404
    assert call(server, "PATCH", "/stacks/no-such-stack", {"ttl": 60})[0] == 404
    assert call(server, "DELETE", "/stacks/no-such-stack")[0] == 404
    assert call(server, "GET", "/operations/op-0000")[0] == 404
    assert call(server, "POST", "/operations/op-0000/cancel")[0] == 404


def test_a_failed_create_leaves_nothing_and_a_failed_update_leaves_the_stack_failed(server):
    # The sandbox program refuses more than 5 words when it runs, after the type check.
    stack, operation = create(server, program="sandbox", config={**SANDBOX, "words": 9})
    ended = finished(server, operation)
    assert ended["status"] == "failed"
    assert ended["error"] == {"code": "engine_error", "message": "the up step failed"}
    assert call(server, "GET", f"/stacks/{stack}")[0] == 404

    stack, operation = create(server, program="sandbox", config=SANDBOX)
    assert finished(server, operation)["status"] == "succeeded"
    _, _, accepted = call(server, "PATCH", f"/stacks/{stack}", {"config": {"words": 9}})
    update = finished(server, accepted["operation"]["id"])
    assert update["status"] == "failed" and update["error"]["code"] == "engine_error"
    _, _, body = call(server, "GET", f"/stacks/{stack}")
    assert body["status"] == "failed" and body["last_operation"] == update["id"]
    _, _, page = call(server, "GET", f"/operations/{update['id']}/events?limit=100",
                      headers={"Accept": "application/json"})
    assert any("must be from 1 to 5" in event["data"].get("message", "")
               for event in page["events"] if event["type"] == "diagnostic")

    deleted = call(server, "DELETE", f"/stacks/{stack}")
    assert finished(server, deleted[2]["operation"]["id"])["status"] == "succeeded"


def _everything_shown(server: ServerProcess, stack: str, operation: str) -> str:
    """Every answer the API gives about a stack and its operation, as one text."""
    _, _, events = call(server, "GET", f"/operations/{operation}/events?limit=100",
                        headers={"Accept": "application/json"})
    return json.dumps([call(server, "GET", f"/stacks/{stack}")[2],
                       call(server, "GET", f"/operations/{operation}")[2],
                       call(server, "GET", f"/operations?stack={stack}")[2], events])


def test_a_secret_nested_inside_an_output_is_masked_where_it_sits(server):
    stack, operation = create(server, program="awkward", config=AWKWARD)
    ended = finished(server, operation)
    assert ended["status"] == "succeeded", ended
    assert ended["outputs"]["credentials"] == {"token": "[secret]", "user": "ann"}
    assert ended["outputs"]["listed"] == ["plain", "[secret]"]
    _, _, body = call(server, "GET", f"/stacks/{stack}")
    assert body["outputs"] == ended["outputs"]
    assert body["config"] == {"token": "[secret]", "keys": "[secret]", "fail": False,
                              "protect": False, "output_kib": 0}
    shown = _everything_shown(server, stack, operation)
    assert [secret for secret in AWKWARD_SECRETS if secret in shown] == []

    deleted = call(server, "DELETE", f"/stacks/{stack}")
    assert finished(server, deleted[2]["operation"]["id"])["status"] == "succeeded"


def test_a_program_that_quotes_its_secrets_in_its_error_leaks_none_of_them(server):
    stack, operation = create(server, program="awkward", config={**AWKWARD, "fail": True})
    ended = finished(server, operation)
    assert ended["status"] == "failed" and ended["error"]["code"] == "engine_error", ended
    _, _, page = call(server, "GET", f"/operations/{operation}/events?limit=100",
                      headers={"Accept": "application/json"})
    quoted = [event["data"]["message"] for event in page["events"]
              if event["type"] == "diagnostic" and "refusing token" in event["data"]["message"]]
    assert quoted and all("[secret]" in message for message in quoted)
    shown = json.dumps(page) + server.output()
    assert [secret for secret in AWKWARD_SECRETS if secret in shown] == []
    # The failure is in the log, with the secrets masked.
    assert "refusing token [secret] and keys [secret] [secret]" in server.output()
    assert call(server, "GET", f"/stacks/{stack}")[0] == 404


def test_outputs_too_large_to_keep_fail_the_create_saying_so(server):
    stack, operation = create(server, program="awkward", config={**AWKWARD, "output_kib": 300})
    ended = finished(server, operation)
    assert ended["status"] == "failed", ended
    assert ended["error"]["code"] == "outputs_too_large"
    assert "at most 262144 are kept" in ended["error"]["message"]
    # The create's resources went with it.
    assert call(server, "GET", f"/stacks/{stack}")[0] == 404


def test_a_create_whose_teardown_fails_ends_failed_and_delete_can_try_again(server, environ):
    stack, operation = create(server, program="awkward", config={**AWKWARD, "protect": True})
    ended = finished(server, operation)
    assert ended["status"] == "failed" and ended["error"]["code"] == "engine_error", ended
    # The protected resource could not go: the stack stays, failed, and is not busy.
    _, _, body = call(server, "GET", f"/stacks/{stack}")
    assert body["status"] == "failed" and body["last_operation"] == operation
    status, _, accepted = call(server, "DELETE", f"/stacks/{stack}")
    assert status == 202, accepted
    destroy = finished(server, accepted["operation"]["id"])
    assert destroy["status"] == "failed" and destroy["error"]["code"] == "engine_error"

    # Once an operator removed it from the backend, a DELETE ends the stack for good.
    force_remove(Settings.from_environ(environ), "awkward", stack)
    status, _, accepted = call(server, "DELETE", f"/stacks/{stack}")
    assert status == 202, accepted
    assert finished(server, accepted["operation"]["id"])["status"] == "succeeded"
    assert call(server, "GET", f"/stacks/{stack}")[0] == 404
