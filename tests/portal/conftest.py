"""Fixtures of the portal tests: real gunicorn servers (with and without a token) and Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from infra.settings import default_programs
from tests.api.support import GUNICORN, make_environ
from tests.harness import free_port, running_server, wait_for
from tests.portal.browser import CHROMIUM_ARGS, DESKTOP, Console, chromium_executable
from tests.portal.support import FIELDS_PROGRAM, SLOW_PROGRAM, TOKEN, Server


def _serve(directory: Path, token: str | None) -> Iterator[Server]:
    # The server with a token also has the test programs (the catalog pages show the real one).
    programs = (*default_programs(), SLOW_PROGRAM, FIELDS_PROGRAM)
    extra = {"INFRA_API_TOKEN": token, "INFRA_API_PROGRAMS": os.pathsep.join(map(str, programs))
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
