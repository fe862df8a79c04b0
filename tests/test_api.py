"""The HTTP surface with a fake at the declared seam (the ``burner`` given to create_app)."""

from __future__ import annotations

import falcon.testing
import pytest

import infra_api
from infra.basic import BurnerResult, Phase
from infra.errors import EngineError, InfraError, ParameterError, ProgramEnvironmentError
from infra.kinds import BurnerRequest
from infra.settings import Settings


class FakeBurner:
    """Records requests and answers with a fixed value, or raises the error it was given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.requests: list[BurnerRequest] = []
        self.error = error

    def run(self, request: BurnerRequest) -> BurnerResult:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        extras = (("hex", "00ff"),) if request.kind == "id" else ()
        phases = (Phase("up", 12.5), Phase("destroy", 7.5))
        return BurnerResult(request.kind, "VALUE", extras, "burner-fake", phases)


@pytest.fixture
def burner():
    """A fake burner that never touches Pulumi."""
    return FakeBurner()


@pytest.fixture
def client(burner, tmp_path):
    """A test client on an app wired to the fake burner."""
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    return falcon.testing.TestClient(infra_api.create_app(settings, burner=burner))


def test_value_body_keeps_the_response_key_and_reports_the_stack(client, burner):
    result = client.simulate_get("/uuid")
    assert result.status_code == 200
    assert result.json == {
        "request": "uuid", "response": "VALUE", "params": {}, "stack": "burner-fake",
        "duration_ms": 20.0, "phases_ms": {"up": 12.5, "destroy": 7.5},
    }
    assert burner.requests == [BurnerRequest("uuid")]


def test_id_returns_its_other_encoding_and_the_defaults_it_used(client, burner):
    result = client.simulate_get("/id")
    assert result.json["hex"] == "00ff"
    assert result.json["params"] == {"bytes": "8"}
    assert burner.requests[0].config() == {"request": "id", "bytes": "8"}


@pytest.mark.parametrize(("path", "query", "config"), [
    ("/id", "bytes=64", {"request": "id", "bytes": "64"}),
    ("/string", "", {"request": "string", "length": "24"}),
    ("/string", "length=1", {"request": "string", "length": "1"}),
    ("/time", "", {"request": "time", "tz": "UTC"}),
    ("/time", "tz=Asia/Kolkata", {"request": "time", "tz": "Asia/Kolkata"}),
])
def test_parameters_reach_the_stack_config(client, burner, path, query, config):
    assert client.simulate_get(path, query_string=query).status_code == 200
    assert burner.requests[0].config() == config


@pytest.mark.parametrize(("path", "query", "parameter", "allowed"), [
    ("/id", "bytes=0", "bytes", "1 to 64"),
    ("/id", "bytes=65", "bytes", "1 to 64"),
    ("/id", "bytes=eight", "bytes", "1 to 64"),
    ("/id", "bytes=-1", "bytes", "1 to 64"),
    ("/id", "bytes=1&bytes=2", "bytes", "a single value"),
    ("/id", "bytes=", "bytes", "1 to 64"),
    ("/string", "length=0", "length", "1 to 256"),
    ("/string", "length=257", "length", "1 to 256"),
    ("/string", "length=%201", "length", "1 to 256"),
    ("/time", "tz=Mars/Olympus", "tz", "IANA time zone"),
    ("/time", "tz=../../etc/passwd", "tz", "IANA time zone"),
    ("/uuid", "color=red", "color", "none"),
    ("/string", "bytes=8", "bytes", "length"),
])
def test_bad_parameter_is_400_json_and_creates_no_stack(client, burner, path, query, parameter, allowed):
    result = client.simulate_get(path, query_string=query)
    assert result.status_code == 400
    assert result.headers["content-type"] == "application/json"
    assert result.json["parameter"] == parameter
    assert allowed in result.json["allowed"]
    assert parameter in result.json["description"]
    assert burner.requests == []


@pytest.mark.parametrize(("error", "status"), [
    (ParameterError("bytes", "0", "an integer from 1 to 64"), 400),
    (EngineError("up", "burner-x", "stderr: SECRET-CLI-OUTPUT"), 502),
    (ProgramEnvironmentError("pip said SECRET-CLI-OUTPUT"), 502),
    (InfraError("SECRET-CLI-OUTPUT"), 500),
])
def test_errors_map_to_status_with_a_safe_json_body(tmp_path, error, status):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    client = falcon.testing.TestClient(infra_api.create_app(settings, burner=FakeBurner(error)))
    result = client.simulate_get("/uuid")
    assert result.status_code == status
    assert result.json["title"]
    assert "SECRET-CLI-OUTPUT" not in result.text


def test_engine_error_names_the_failed_step_and_stack(tmp_path):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    fake = FakeBurner(EngineError("refresh", "burner-abc", "raw output"))
    result = falcon.testing.TestClient(infra_api.create_app(settings, burner=fake)).simulate_get("/uuid")
    assert result.json["stack"] == "burner-abc"
    assert "refresh" in result.json["description"]


@pytest.mark.parametrize("path", ["/nope", "/uuid/extra", "/ids"])
def test_unknown_path_is_404_json(client, path):
    result = client.simulate_get(path, headers={"Accept": "text/html"})
    assert result.status_code == 404
    assert result.headers["content-type"] == "application/json"
    assert result.json["title"] == "404 Not Found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_json(client, burner, method):
    result = client.simulate_request(method, "/uuid")
    assert result.status_code == 405
    assert result.json["title"] == "405 Method Not Allowed"
    assert "GET" in result.headers["allow"]
    assert burner.requests == []


def test_index_lists_every_endpoint_with_parameters(client):
    result = client.simulate_get("/")
    assert result.status_code == 200
    assert result.json["service"] == "burner-api"
    endpoints = {e["path"]: e for e in result.json["endpoints"]}
    assert set(endpoints) == {"/", "/id", "/uuid", "/string", "/time", "/healthz"}
    assert "1 to 64" in endpoints["/id"]["parameters"]["bytes"]
    assert "default 24" in endpoints["/string"]["parameters"]["length"]


def test_healthz_answers_without_pulumi(client, burner):
    result = client.simulate_get("/healthz")
    assert (result.status_code, result.json) == (200, {"status": "ok"})
    assert burner.requests == []


def test_application_is_built_lazily_from_the_environment(monkeypatch, tmp_path):
    import importlib

    monkeypatch.setenv("INFRA_API_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("INFRA_API_ENGINE", "offline")
    module = importlib.reload(infra_api)
    assert not tmp_path.joinpath("backend").exists()
    client = falcon.testing.TestClient(module.application)
    assert client.simulate_get("/healthz").status_code == 200
    assert module.app is module.application
