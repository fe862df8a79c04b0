"""Fixtures of the portal tests: real gunicorn servers (with and without a token) and Chromium."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from infra.settings import PROJECT_ROOT, default_programs
from tests.api.support import GUNICORN, make_environ
from tests.harness import ServerProcess, free_port, get_json, running_server, wait_for
from tests.portal.browser import CHROMIUM_ARGS, DESKTOP, Console, chromium_executable

TOKEN = "portal-test-token"


@dataclass
class Server:
    process: ServerProcess
    token: str | None

    @property
    def url(self) -> str:
        return self.process.base_url

    def ui(self, page: str = "") -> str:
        return f"{self.url}/ui/{page}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str) -> tuple[int, dict]:
        return get_json(self.url + path, headers=self.headers())

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Any method, a JSON body, the token if the server has one."""
        request = urllib.request.Request(self.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", **self.headers()})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def finished(self, operation: str, timeout: float = 180) -> dict:
        """The operation once it has ended."""
        def ended() -> dict | None:
            status, body = self.get(f"/operations/{operation}")
            assert status == 200, body
            return body if body["status"] in ("succeeded", "failed", "cancelled") else None
        result: dict = wait_for(ended, timeout=timeout, what=f"operation {operation} to end")
        return result

    def events(self, operation: str) -> list[dict]:
        """Every event of the operation, as the JSON pages give them."""
        found: list[dict] = []
        after = 0
        while True:
            status, body = get_json(f"{self.url}/operations/{operation}/events?after={after}&limit=100",
                                    headers={"Accept": "application/json", **self.headers()})
            assert status == 200, body
            found += body["events"]
            if not body["events"] or body["next"] is None:
                return found
            after = body["next"]


# A program whose resources come one at a time: a test can cut its event stream mid-way.
SLOW_PROGRAM = PROJECT_ROOT / "tests" / "portal" / "programs" / "slow"


def _serve(directory: Path, token: str | None) -> Iterator[Server]:
    # The server with a token also has the slow program (the catalog pages show the real one).
    extra = {"INFRA_API_TOKEN": token,
             "INFRA_API_PROGRAMS": os.pathsep.join(map(str, (*default_programs(), SLOW_PROGRAM)))
             } if token else {}
    environ = make_environ(directory / "state", INFRA_API_HOST="127.0.0.1",
                           INFRA_API_PORT=str(free_port()), **extra)
    with running_server(GUNICORN, environ, directory / "server.log") as process:
        server = Server(process, token)
        wait_for(lambda: server.get("/readyz")[0] == 200, timeout=120, what="the server to be ready")
        yield server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """gunicorn without a token, on a fresh state dir."""
    yield from _serve(tmp_path_factory.mktemp("portal-open"), None)


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """gunicorn with INFRA_API_TOKEN set, on a fresh state dir."""
    yield from _serve(tmp_path_factory.mktemp("portal-token"), TOKEN)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_executable()),
                                             args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh tab (own storage) whose console must stay free of errors and warnings."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    context.set_default_timeout(30_000)
    tab = context.new_page()
    console.watch(tab)
    try:
        yield tab
    finally:
        context.close()
    assert console.unexpected() == []
