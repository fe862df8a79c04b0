"""Query parameters of the stack and operation routes: a bad one is a 400 naming it, never a
500, and nothing is silently ignored. The routes run on a service that was never started (no
Temporal, no engine): parameters are checked before anything is looked up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import falcon.testing
import pytest

from infra.service import Service
from infra.settings import Settings
from infra.store import OperationRecord

TOKEN = "s3cret"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
TOO_BIG = str(2**63)  # past a database integer


@pytest.fixture
def client(tmp_path) -> Iterator[falcon.testing.TestClient]:
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path),
                                      "INFRA_API_TOKEN": TOKEN})
    service = Service(settings)
    now = time.time()
    service.store.record_operation(OperationRecord("op-1", "burn", "burner-0", "burner",
                                                   "succeeded", now, now, now))
    yield falcon.testing.TestClient(service.app())
    service.store.close()


@pytest.mark.parametrize(("path", "query", "parameter"), [
    ("/stacks", "limit=%C2%B2", "limit"),           # "²" is a digit to str.isdigit
    ("/stacks", "limit=1&limit=5", "limit"),         # repeated
    ("/stacks", "bogus=1", "bogus"),                 # unknown
    ("/stacks", "after=", "after"),                  # blank
    ("/stacks", "after=WyJcdWQ4MDAiXQ", "after"),    # a cursor holding an unpaired surrogate
    ("/stacks", "status=gone", "status"),
    ("/operations", "stack=x&stack=nope", "stack"),
    ("/operations", "after=WzEuMCwgIlx1ZDgwMCJd", "after"),
    ("/operations", f"after=WzEuMCwg{'A' * 200}", "after"),
    ("/operations/op-1", "verbose=1", "verbose"),
    ("/operations/op-1/events", f"after={TOO_BIG}", "after"),
    ("/operations/op-1/events", "after=%C2%B2", "after"),
    ("/operations/op-1/events", "limit=0", "limit"),
    ("/stacks/x", "show_secrets=false&show_secrets=true", "show_secrets"),
    ("/stacks/x", "show_secrets=maybe", "show_secrets"),
])
def test_a_bad_query_parameter_is_a_400_naming_it(client, path, query, parameter):
    result = client.simulate_get(path, query_string=query, headers=BEARER)
    assert result.status_code == 400, result.text
    assert result.json["code"] == "invalid_parameter"
    assert result.json["parameter"] == parameter


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
def test_a_last_event_id_past_any_sequence_number_is_a_400(client, accept):
    result = client.simulate_get("/operations/op-1/events",
                                 headers={**BEARER, "Accept": accept, "Last-Event-ID": TOO_BIG})
    assert result.status_code == 400, result.text
    assert result.json["parameter"] == "Last-Event-ID"


def test_good_query_parameters_still_answer(client):
    listed = client.simulate_get("/stacks", query_string="limit=5&status=ready", headers=BEARER)
    assert listed.status_code == 200, listed.text
    page = client.simulate_get("/operations", query_string="stack=burner-0&limit=1",
                               headers=BEARER)
    assert [op["id"] for op in page.json["operations"]] == ["op-1"]
    events = client.simulate_get("/operations/op-1/events", query_string="after=0&limit=10",
                                 headers={**BEARER, "Accept": "application/json"})
    assert events.status_code == 200 and events.json["next"] is None


@pytest.mark.parametrize("ticket", [
    "\u00b2.abc",                 # a digit to str.isdigit, not to int()
    "9999999999.\u00e9",          # a MAC that is not ASCII
    "9" * 5000 + ".abc",          # more digits than int() takes
])
def test_a_malformed_stream_ticket_is_refused_as_unauthorized(client, ticket):
    result = client.simulate_get("/operations/op-1/events", params={"ticket": ticket},
                                 headers={"Accept": "text/event-stream"})
    assert result.status_code == 401, result.text
    assert result.json["code"] == "unauthorized"
    assert "stream-ticket" in result.json["description"]
