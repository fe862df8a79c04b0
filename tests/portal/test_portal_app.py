"""The portal's routes on the app itself (no browser): files, headers, methods, metrics."""

from __future__ import annotations

import falcon.testing
import pytest

import infra_api
from infra.portal import SECURITY_HEADERS
from infra.settings import Settings


@pytest.fixture
def client(tmp_path):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path), "INFRA_API_TOKEN": "s3cret"})
    return falcon.testing.TestClient(infra_api.create_app(settings))


@pytest.mark.parametrize(("path", "status", "content_type"), [
    ("/ui/", 200, "text/html; charset=utf-8"),
    ("/ui/stacks.html", 200, "text/html; charset=utf-8"),
    ("/ui/operation.js", 200, "text/javascript; charset=utf-8"),
    ("/ui/style.css", 200, "text/css; charset=utf-8"),
    ("/ui/favicon.svg", 200, "image/svg+xml"),
    ("/ui/missing.html", 404, "application/json"),
    ("/ui/Index.html", 404, "application/json"),
    ("/ui/.hidden.js", 404, "application/json"),
])
def test_only_the_portals_own_files_are_served_without_a_token(client, path, status, content_type):
    result = client.simulate_get(path)
    assert result.status_code == status
    assert result.headers["content-type"] == content_type
    for name, value in SECURITY_HEADERS.items():
        assert result.headers[name] == value


@pytest.mark.parametrize("path", ["/ui/..%2Finfra%2Fportal.py", "/ui/../infra/portal.py", "/ui/a/b.js",
                                  "/uix", "/ui/%2e%2e/setup.cfg"])
def test_nothing_outside_the_portals_directory_is_reachable(client, path):
    result = client.simulate_get(path)
    assert result.status_code == 404
    assert result.json["code"] == "not_found"


def test_ui_without_a_slash_redirects_and_other_methods_are_refused(client):
    result = client.simulate_get("/ui")
    assert (result.status_code, result.headers["location"]) == (301, "/ui/")
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        result = client.simulate_request(method, "/ui/index.html")
        assert (result.status_code, result.headers["allow"]) == (405, "GET"), method
    assert client.simulate_get("/programs").status_code == 401


def test_portal_requests_share_one_metrics_label(client):
    for path in ("/ui/", "/ui/api.js", "/ui/nope-1.js", "/ui/nope-2.js"):
        client.simulate_get(path)
    text = client.simulate_get("/metrics", headers={"Authorization": "Bearer s3cret"}).text
    assert 'route="/ui/{file}",status="200"} 2.0' in text
    assert 'route="/ui/{file}",status="404"} 2.0' in text
    assert "nope" not in text
