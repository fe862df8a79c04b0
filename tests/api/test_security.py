"""Hardening of the HTTP surface against hostile clients.

Bounded metric labels, log lines a client cannot forge, strict integer parameters, settings
errors that never echo the token, deliberate answers to odd methods, and a dev server whose
banner names no versions and whose own errors are JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer, make_server

import falcon.testing
import pytest

import infra_api
from infra import devserver, logs
from infra.errors import SettingsError
from infra.service import Service
from infra.settings import Settings
from infra.store import OperationRecord
from infra.web import issue_ticket, ticket_valid
from tests.api.support import PYTHON, make_environ
from tests.api.test_api import FakeOperations
from tests.harness import ServerProcess, free_port, start_server

# Falcon's test client runs wsgiref's validator, which warns about the methods we invent.
invented_methods = pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")


@pytest.fixture
def operations() -> FakeOperations:
    return FakeOperations()


@pytest.fixture
def client(operations, tmp_path) -> falcon.testing.TestClient:
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    return falcon.testing.TestClient(infra_api.create_app(settings, operations=operations))


# Metrics -------------------------------------------------------------------------------------


@invented_methods
def test_invented_methods_do_not_grow_the_metrics(client):
    # One request of each shape first, so that every label combination already exists.
    client.simulate_request("INVENTED0", "/uuid")
    client.simulate_request("INVENTED0", "/nope")
    client.simulate_get("/metrics")
    before = client.simulate_get("/metrics").text
    for i in range(1, 300):
        client.simulate_request(f"INVENTED{i}", "/uuid" if i % 2 else f"/nope{i}")
    after = client.simulate_get("/metrics").text
    assert "INVENTED" not in after
    assert len(after.splitlines()) == len(before.splitlines())
    assert len(after) - len(before) < 100  # only counter values changed


# Methods -------------------------------------------------------------------------------------


@invented_methods
@pytest.mark.parametrize(("method", "path"), [
    ("FOO", "/uuid"), ("get", "/healthz"), ("PROPFIND", "/"), ("BREW", "/metrics"),
    ("GET\nX", "/uuid"), ("QUERY", "/id"), ("HEAD", "/uuid"), ("HEAD", "/healthz"),
])
def test_any_method_but_get_and_options_is_405_json(client, operations, method, path):
    result = client.simulate_request(method, path, headers={"X-Request-ID": "odd-method"})
    assert result.status_code == 405
    assert result.headers["content-type"] == "application/json"
    assert result.headers["allow"] == "GET, OPTIONS"
    assert result.headers["x-request-id"] == "odd-method"
    if method != "HEAD":  # a HEAD answer has the headers of the body but not the body
        assert result.json["code"] == "method_not_allowed"
        assert result.json["request_id"] == "odd-method"
    assert operations.requests == []


@pytest.mark.parametrize("path", ["/uuid", "/healthz", "/metrics"])
def test_options_lists_the_same_methods_as_a_405(client, path):
    options = client.simulate_request("OPTIONS", path)
    refused = client.simulate_request("DELETE", path)
    assert options.status_code == 200 and refused.status_code == 405
    assert options.headers["allow"] == refused.headers["allow"] == "GET, OPTIONS"


@invented_methods
def test_invented_method_on_an_unknown_path_is_404_json(client):
    result = client.simulate_request("FOO", "/nope")
    assert result.status_code == 404
    assert result.json["code"] == "not_found"


def test_openapi_documents_the_answers_to_other_methods(client):
    document = client.simulate_get("/openapi.json").json
    codes = document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert {"method_not_allowed", "bad_request"} <= set(codes)
    assert "405" in document["info"]["description"]


# Logs ----------------------------------------------------------------------------------------


def format_records(caplog) -> list[str]:
    formatter = logging.Formatter(logs.TEXT_FORMAT)
    return [formatter.format(record) for record in caplog.records]


@pytest.fixture
def caplog_with_context(caplog):
    caplog.handler.addFilter(logs.ContextFilter())
    caplog.set_level(logging.INFO)
    return caplog


@invented_methods
@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", "/nope%0a2026-01-01 00:00:00 [1] INFO infra.web: FORGED", ""),
    ("GET", "/nope%0dFORGED%1b[2J", ""),
    ("GET", "/time", "tz=%1b[2J%0dFORGED%0a"),
    ("GET", "/uuid", "FORGED%0a=1"),
    ("GET", "/id", "bytes=1&bytes=%0aFORGED"),
    ("GET\rFORGED", "/uuid", ""),
    ("GET\x1bFORGED", "/nope", ""),
])
def test_client_values_reach_the_log_without_control_characters(
        client, caplog_with_context, method, path, query):
    client.simulate_request(method, path, query_string=query)
    lines = format_records(caplog_with_context)
    assert any("FORGED" in line for line in lines)  # the value was logged...
    for line in lines:
        assert line.isprintable(), line  # ...on one line, with no raw control character


@pytest.mark.parametrize("sent", ["FOR\nGED", "FORGED\x1b[31m", "FOR\u2028GED", "FOR\x85GED",
                                  "FORGED\rX-Injected: 1"])
def test_request_id_with_control_characters_is_replaced(client, caplog_with_context, sent):
    result = client.simulate_get("/uuid", headers={"X-Request-ID": sent})
    echoed = result.headers["x-request-id"]
    assert "FOR" not in echoed and echoed.isprintable()
    records = caplog_with_context.records
    assert records and {record.request_id for record in records} == {echoed}
    assert all(line.isprintable() for line in format_records(caplog_with_context))


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain /path", "plain /path"),
    ("a\nb", "a\\nb"),
    ("a\rb\x1b[2J", "a\\rb\\x1b[2J"),
    ("\x00\x7f\x85", "\\x00\\x7f\\x85"),
    ("line\u2028sep\u202eltr", "line\\u2028sep\\u202eltr"),
    ("zoë/東京", "zoë/東京"),
])
def test_escape_keeps_printable_text_and_escapes_the_rest(raw, shown):
    assert logs.escape(raw) == shown


def test_json_log_lines_are_single_lines_too(client, caplog_with_context):
    client.simulate_get("/nope%0aFORGED")
    formatter = logs.JsonFormatter()
    entries = [formatter.format(record) for record in caplog_with_context.records]
    assert any("FORGED" in entry for entry in entries)
    assert all("\n" not in entry for entry in entries)


# Integer parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "query", "parameter"), [
    ("/id", "bytes=" + "1" * 4301, "bytes"),
    ("/id", "bytes=" + "9" * 20000, "bytes"),
    ("/id", "bytes=%D9%A6%D9%A4", "bytes"),  # Arabic-Indic digits 64
    ("/id", "bytes=%EF%BC%96", "bytes"),  # fullwidth 6
    ("/id", "bytes=08", "bytes"),
    ("/id", "bytes=0064", "bytes"),
    ("/id", "bytes=00", "bytes"),
    ("/id", "bytes=%F0%9D%9F%95", "bytes"),  # mathematical bold 3
    ("/string", "length=010", "length"),
    ("/string", "length=" + "2" * 5000, "length"),
    ("/string", "length=%E0%A5%AA", "length"),  # Devanagari 4
])
def test_only_canonical_ascii_integers_are_accepted(client, operations, path, query, parameter):
    result = client.simulate_get(path, query_string=query)
    assert result.status_code == 400
    assert result.json["code"] == "invalid_parameter"
    assert result.json["parameter"] == parameter
    assert operations.requests == []


# Settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [
    "two words", "tab\there", "trailing\n", " leading", "naïve-token", "tökén", "nb\u00a0sp",
    "zero\u200bwidth",
])
def test_token_with_whitespace_or_non_ascii_is_refused_without_echoing_it(token):
    with pytest.raises(SettingsError) as info:
        Settings.from_environ({"INFRA_API_TOKEN": token})
    assert info.value.variable == "INFRA_API_TOKEN"
    assert "INFRA_API_TOKEN" in str(info.value)
    assert token.strip() not in str(info.value) and token not in repr(info.value)
    assert token not in info.value.value


def test_token_of_printable_ascii_is_accepted():
    token = "s3cret-Token_1.~+/=!"
    assert Settings.from_environ({"INFRA_API_TOKEN": token}).token == token


# The dev server (wsgiref) --------------------------------------------------------------------


@pytest.fixture
def dev_server(client) -> Iterator[tuple[str, int]]:
    """The app behind wsgiref with the service's request handler, in a thread."""
    server: WSGIServer = make_server("127.0.0.1", 0, client.app,
                                     handler_class=devserver.RequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def exchange(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer: (status, headers with lower-case names, body)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"duplicate {name} header"
        headers[name.lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def test_dev_server_banner_names_no_version(dev_server):
    status, headers, _ = exchange(dev_server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status == 200
    assert headers["server"] == devserver.SERVER_HEADER == "burner-api"


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/9.9\r\n\r\n", 505, "http_version_not_supported"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, "request_uri_too_long"),
    (b"GET /healthz HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431,
     "request_header_fields_too_large"),
    (b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", 431,
     "request_header_fields_too_large"),
])
def test_dev_server_errors_are_json_with_a_request_id(dev_server, raw, status, code):
    got, headers, body = exchange(dev_server, raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert headers["server"] == "burner-api"
    document = json.loads(body)
    assert document["code"] == code
    assert document["request_id"] == headers["x-request-id"]
    assert "GARBAGE" not in body.decode() and "aaaa" not in body.decode()


def test_dev_server_access_log_escapes_the_request_line(dev_server, caplog_with_context):
    exchange(dev_server, b"GET /nope\x1b[2J\rFORGED HTTP/1.0\r\n\r\n")
    exchange(dev_server, b"GET\x1b FORGED2\r\n\r\n")
    lines = format_records(caplog_with_context)
    assert any("FORGED" in line for line in lines)
    assert any("FORGED2" in line for line in lines)
    for line in lines:
        assert line.isprintable(), line


# gunicorn's access log -----------------------------------------------------------------------


@pytest.fixture
def gunicorn_access_log(tmp_path) -> Iterator[tuple[tuple[str, int], ServerProcess]]:
    """gunicorn with the service's logger class and its access log on stdout."""
    port = free_port()
    (tmp_path / "empty.conf.py").write_text("")
    argv = [PYTHON, "-m", "gunicorn", "-c", str(tmp_path / "empty.conf.py"),
            "--logger-class", "infra.logs.GunicornLogger", "--access-logfile", "-",
            "--no-control-socket", "--workers", "1", "-b", f"127.0.0.1:{port}",
            "infra_api:create_app()"]
    environ = make_environ(tmp_path / "state", INFRA_API_PORT=str(port))
    for server in start_server(argv, environ, tmp_path / "gunicorn.log"):
        yield ("127.0.0.1", port), server


@pytest.mark.slow
def test_gunicorn_access_log_escapes_what_gunicorn_lets_through(gunicorn_access_log):
    address, server = gunicorn_access_log
    forged = b'\n127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /FORGED HTTP/1.1" 200 0 "-" "-"'
    user = base64.b64encode(b"evil" + forged + b":password").decode()
    status, _, _ = exchange(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                     b"Authorization: Basic " + user.encode() + b"\r\n"
                                     b"User-Agent: ua\x9b2J\x85FORGED-UA\r\n\r\n")
    assert status == 200
    server.stop()
    lines = [line for line in server.output().splitlines() if "/healthz HTTP/1.1" in line
             or "FORGED" in line]
    assert len(lines) == 2  # the readiness probe's line and ours, nothing forged
    assert not any(line.startswith("127.0.0.1 - - [01/Jan/2026") for line in lines)
    assert "FORGED-UA" in lines[-1] and lines[-1].isprintable()


def test_a_stream_ticket_opens_only_its_own_stream_and_only_briefly():
    ticket = issue_ticket("tok", "op-1", now=1000, seconds=60)
    assert ticket_valid("tok", "op-1", ticket, 1059)
    assert not ticket_valid("tok", "op-1", ticket, 1061)   # expired
    assert not ticket_valid("tok", "op-2", ticket, 1000)   # another operation's stream
    assert not ticket_valid("other", "op-1", ticket, 1000)  # signed with another token
    assert not ticket_valid("tok", "op-1", "1060.forged", 1000)
    assert "tok" not in ticket


def test_the_event_stream_takes_a_ticket_instead_of_the_bearer_header(tmp_path):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path),
                                      "INFRA_API_TOKEN": "s3cret"})
    service = Service(settings)  # never started: the routes below need only the store
    now = time.time()
    service.store.record_operation(OperationRecord("op-1", "burn", "burner-0", "burner",
                                                   "succeeded", now, now, now))
    client = falcon.testing.TestClient(service.app())
    bearer = {"Authorization": "Bearer s3cret"}

    issued = client.simulate_post("/operations/op-1/stream-ticket", headers=bearer)
    assert issued.status_code == 200 and issued.json["expires_in"] == 60
    ticket = issued.json["ticket"]
    opened = client.simulate_get("/operations/op-1/events", params={"ticket": ticket})
    assert opened.status_code == 200
    assert opened.headers["content-type"] == "text/event-stream"
    assert client.simulate_get("/operations/op-1/events",
                               params={"ticket": ticket + "0"}).status_code == 401
    assert client.simulate_get("/operations/op-1/events").status_code == 401
    # A ticket opens the stream and nothing else.
    assert client.simulate_get("/operations/op-1", params={"ticket": ticket}).status_code == 401
    assert client.simulate_post("/operations/op-1/stream-ticket").status_code == 401
