"""The HTTP surface with a fake at the declared seam (the ``operations`` given to create_app)."""

from __future__ import annotations

import concurrent.futures
import threading

import falcon.testing
import pytest

import infra_api
from infra.basic import BurnerResult, Phase
from infra.errors import (
    DeadlineError,
    EngineError,
    InfraError,
    OverloadedError,
    ParameterError,
    ProgramEnvironmentError,
)
from infra.kinds import BurnerRequest
from infra.settings import Settings


class FakeOperations:
    """Records requests and answers with a fixed value, or raises the error it was given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.requests: list[BurnerRequest] = []
        self.error = error
        self.checks = {"engine": True, "program_venv": True, "state_dir": True, "backend": True}

    def readiness(self) -> dict[str, bool]:
        return dict(self.checks)

    def burn(self, request: BurnerRequest) -> BurnerResult:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        extras = (("hex", "00ff"),) if request.kind == "id" else ()
        phases = (Phase("up", 12.5), Phase("destroy", 7.5))
        return BurnerResult(request.kind, "VALUE", extras, "burner-fake", phases,
                            operation="burner-fake")


@pytest.fixture
def burner():
    """Fake operations that never touch Pulumi or Temporal."""
    return FakeOperations()


@pytest.fixture
def client(burner, tmp_path):
    """A test client on an app wired to the fake operations."""
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    return falcon.testing.TestClient(infra_api.create_app(settings, operations=burner))


def test_value_body_keeps_the_response_key_and_reports_the_stack(client, burner):
    result = client.simulate_get("/uuid")
    assert result.status_code == 200
    assert result.json == {
        "request": "uuid", "response": "VALUE", "operation": "burner-fake", "params": {},
        "stack": "burner-fake",
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


@pytest.mark.parametrize(("error", "status", "code"), [
    (ParameterError("bytes", "0", "an integer from 1 to 64"), 400, "invalid_parameter"),
    (EngineError("up", "burner-x", "stderr: SECRET-CLI-OUTPUT"), 502, "engine_error"),
    (ProgramEnvironmentError("pip said SECRET-CLI-OUTPUT"), 502, "engine_error"),
    (DeadlineError("up", "burner-x", 30), 504, "deadline_exceeded"),
    (OverloadedError(8, 2), 503, "overloaded"),
    (InfraError("SECRET-CLI-OUTPUT"), 500, "internal_error"),
    (RuntimeError("SECRET-CLI-OUTPUT"), 500, "internal_error"),
])
def test_errors_map_to_status_with_a_safe_json_body(tmp_path, error, status, code):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    client = falcon.testing.TestClient(infra_api.create_app(settings, operations=FakeOperations(error)))
    result = client.simulate_get("/uuid")
    assert result.status_code == status
    assert result.headers["content-type"] == "application/json"
    assert result.json["title"]
    assert result.json["code"] == code
    assert result.json["request_id"] == result.headers["x-request-id"]
    assert "SECRET-CLI-OUTPUT" not in result.text


def test_engine_error_names_the_failed_step_and_stack(tmp_path):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    fake = FakeOperations(EngineError("refresh", "burner-abc", "raw output"))
    result = falcon.testing.TestClient(infra_api.create_app(settings, operations=fake)).simulate_get("/uuid")
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
    assert set(endpoints) == {"/", "/id", "/uuid", "/string", "/time", "/healthz", "/readyz",
                              "/metrics", "/openapi.json", "/programs", "/programs/{program}",
                              "/stacks", "/stacks/{stack}", "/operations",
                              "/operations/{operation}", "/operations/{operation}/events",
                              "/operations/{operation}/cancel",
                              "/operations/{operation}/stream-ticket"}
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


@pytest.mark.parametrize(("sent", "echoed"), [
    ("abc-123", True),
    ("7f1c2a.req:42_x", True),
    ("", False),
    ("has space", False),
    ("x" * 129, False),
    ("evil\u00e9", False),
])
def test_request_id_is_echoed_when_plain_else_generated(client, sent, echoed):
    result = client.simulate_get("/uuid", headers={"X-Request-ID": sent} if sent else {})
    request_id = result.headers["x-request-id"]
    assert (request_id == sent) is echoed
    assert 1 <= len(request_id) <= 128


def test_error_body_carries_the_request_id_sent(client):
    result = client.simulate_get("/id", query_string="bytes=0", headers={"X-Request-ID": "r-1"})
    assert result.json["request_id"] == "r-1"
    assert client.simulate_get("/nope", headers={"X-Request-ID": "r-2"}).json["request_id"] == "r-2"


@pytest.fixture
def token_client(burner, tmp_path):
    """A client on an app that requires the bearer token ``s3cret``."""
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path), "INFRA_API_TOKEN": "s3cret"})
    return falcon.testing.TestClient(infra_api.create_app(settings, operations=burner))


@pytest.mark.parametrize(("path", "authorization", "status"), [
    ("/uuid", None, 401),
    ("/uuid", "Bearer wrong", 401),
    ("/uuid", "Bearer s3cre", 401),
    ("/uuid", "Basic s3cret", 401),
    ("/uuid", "s3cret", 401),
    ("/uuid", "Bearer s3cret", 200),
    ("/uuid", "bearer s3cret", 200),
    ("/", None, 401),
    ("/readyz", None, 401),
    ("/metrics", None, 401),
    ("/openapi.json", None, 401),
    ("/nope", None, 404),
    ("/healthz", None, 200),
    ("/healthz", "Bearer wrong", 200),
])
def test_token_is_required_everywhere_but_healthz(token_client, burner, path, authorization, status):
    headers = {"Authorization": authorization} if authorization else {}
    result = token_client.simulate_get(path, headers=headers)
    assert result.status_code == status
    if status != 200:
        assert "s3cret" not in result.text
    if status == 401:
        assert result.json["code"] == "unauthorized"
        assert result.headers["www-authenticate"].startswith("Bearer")
        assert "s3cret" not in result.text
        assert burner.requests == []


def test_without_a_token_no_authorization_is_needed(client):
    assert client.simulate_get("/uuid").status_code == 200


class BlockingOperations(FakeOperations):
    """Holds every run until released, so a test can fill the slots."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def burn(self, request: BurnerRequest):
        self.entered.release()
        self.release.wait(10)
        return super().burn(request)


def test_full_slots_answer_503_with_retry_after_and_create_nothing(tmp_path):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path), "INFRA_API_MAX_INFLIGHT": "2"})
    burner = BlockingOperations()
    client = falcon.testing.TestClient(infra_api.create_app(settings, operations=burner))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = [pool.submit(client.simulate_get, "/uuid") for _ in range(2)]
        assert burner.entered.acquire(timeout=10) and burner.entered.acquire(timeout=10)
        refused = client.simulate_get("/uuid")
        burner.release.set()
        assert [f.result().status_code for f in running] == [200, 200]
    assert refused.status_code == 503
    assert refused.json["code"] == "overloaded"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(burner.requests) == 2
    assert client.simulate_get("/uuid").status_code == 200  # slots are given back


@pytest.mark.parametrize(("checks", "status", "state"), [
    ({"engine": True, "program_venv": True, "state_dir": True}, 200, "ready"),
    ({"engine": False, "program_venv": True, "state_dir": True}, 503, "not_ready"),
    ({"engine": True, "program_venv": False, "state_dir": True}, 503, "not_ready"),
    ({"engine": True, "program_venv": True, "state_dir": False}, 503, "not_ready"),
    ({"engine": True, "program_venv": True, "state_dir": True, "backend": False}, 503,
     "not_ready"),
])
def test_readyz_is_503_until_every_check_passes(client, burner, checks, status, state):
    burner.checks = checks
    result = client.simulate_get("/readyz")
    assert result.status_code == status
    assert result.json == {"status": state, "checks": checks}


def test_metrics_count_requests_by_route_and_status(client):
    client.simulate_get("/uuid")
    client.simulate_get("/id", query_string="bytes=0")
    result = client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/plain")
    text = result.text
    assert 'burner_http_requests_total{method="GET",route="/uuid",status="200"} 1.0' in text
    assert 'burner_http_requests_total{method="GET",route="/id",status="400"} 1.0' in text
    assert "burner_inflight_stacks 0.0" in text
    assert "burner_reaped_stacks_total 0.0" in text


def test_engine_failures_are_counted_by_code_and_phase(tmp_path):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    fake = FakeOperations(DeadlineError("up", "burner-x", 5))
    client = falcon.testing.TestClient(infra_api.create_app(settings, operations=fake))
    client.simulate_get("/uuid")
    text = client.simulate_get("/metrics").text
    assert 'burner_failures_total{code="deadline_exceeded",phase="up"} 1.0' in text


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_openapi_documents_every_route_and_the_auth_it_needs(tmp_path, token, burner):
    environ = {"INFRA_API_STATE_DIR": str(tmp_path), "INFRA_API_TOKEN": token or ""}
    app = infra_api.create_app(Settings.from_environ(environ), operations=burner)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = falcon.testing.TestClient(app)
    document = client.simulate_get("/openapi.json", headers=headers).json
    assert document["openapi"].startswith("3.1")
    served = {e["path"] for e in client.simulate_get("/", headers=headers).json["endpoints"]}
    assert set(document["paths"]) == served
    uuid_responses = document["paths"]["/uuid"]["get"]["responses"]
    assert {"200", "400", "502", "503", "504"} <= set(uuid_responses)
    assert ("401" in uuid_responses) is (token is not None)
    assert "401" not in document["paths"]["/healthz"]["get"]["responses"]
    params = {p["name"]: p["schema"] for p in document["paths"]["/id"]["get"]["parameters"]}
    assert (params["bytes"]["minimum"], params["bytes"]["maximum"]) == (1, 64)
