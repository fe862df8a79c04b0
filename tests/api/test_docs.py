"""The README stays in step with the code: routes, settings and the quickstart."""

from __future__ import annotations

import re

import falcon.inspect
import falcon.testing
import pytest

import infra_api
from infra.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text()


@pytest.fixture
def routes(tmp_path):
    """(method, path) of every responder the router knows."""
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    app = infra_api.create_app(settings)
    return {(method.method, route.path) for route in falcon.inspect.inspect_routes(app)
            for method in route.methods if not method.internal}


def test_every_route_is_documented_and_every_documented_route_exists(routes):
    documented = set(re.findall(r"`(GET|POST|PATCH|DELETE) (/[a-z.{}/-]*)`", README))
    assert documented == routes


def test_the_index_page_lists_every_route(tmp_path, routes):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    client = falcon.testing.TestClient(infra_api.create_app(settings))
    listed = {endpoint["path"] for endpoint in client.simulate_get("/").json["endpoints"]}
    assert listed == {path for _, path in routes}


def test_every_setting_is_documented_and_every_documented_setting_exists():
    source = (PROJECT_ROOT / "infra" / "settings.py").read_text()
    in_code = set(re.findall(r'"(INFRA_API_[A-Z_]+)"', source))
    in_table = set(re.findall(r"^\| `(INFRA_API_[A-Z_]+)`", README, flags=re.MULTILINE))
    assert in_code
    assert in_table == in_code


def test_documented_settings_parse_with_their_documented_example(tmp_path):
    rows = re.findall(r"^\| `(INFRA_API_[A-Z_]+)` \| `([^`]*)`", README, flags=re.MULTILINE)
    assert rows
    for name, example in rows:
        Settings.from_environ({name: example.replace("<tmp>", str(tmp_path))})


def test_quickstart_is_exactly_make_run_and_make_test():
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    assert block.group(1).split("\n")[:-1] == ["make run", "make test"]
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)


def test_ci_runs_the_documented_test_command():
    script = (PROJECT_ROOT / ".ci" / "run").read_text()
    commands = [line for line in script.splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
