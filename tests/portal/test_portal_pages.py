"""The portal's pages in a real Chromium against a real server: catalog, values, sign-in."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import uuid
from email.message import Message

import pytest
from playwright.sync_api import Page, expect

from infra.portal import UI_DIR
from tests.portal.browser import screenshot
from tests.portal.support import TOKEN, Server

pytestmark = pytest.mark.slow

PAGES = ["", "index.html", "create.html", "stacks.html", "operation.html", "values.html", "signin.html"]


def fetch(url: str) -> tuple[int, Message, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.mark.parametrize("name", PAGES)
def test_pages_need_no_token_and_carry_the_security_headers(token_server: Server, name):
    status, headers, body = fetch(token_server.ui(name))
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script type=\"module\" src=" in body
    # The data the pages show is not: the API still wants the token.
    assert fetch(token_server.url + "/programs")[0] == 401


def test_portal_serves_only_its_own_files(server: Server):
    assert fetch(server.url + "/ui")[0] == 200  # redirected to /ui/
    for path in ["/ui/..%2Finfra%2Fapp.py", "/ui/portal.py", "/ui/missing.js", "/ui/a/b.js"]:
        assert fetch(server.url + path)[0] == 404, path
    request = urllib.request.Request(server.ui("index.html"), method="POST", data=b"")
    try:
        urllib.request.urlopen(request, timeout=30)
        raise AssertionError("POST was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405


def test_static_files_use_no_inline_script_and_no_html_sinks():
    for path in UI_DIR.iterdir():
        text = path.read_text()
        if path.suffix == ".js":
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", text), path
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
            assert not re.search(r"\son[a-z]+=|\sstyle=", text), path


def test_programs_page_lists_the_catalog_with_descriptions(server: Server, page: Page):
    page.goto(server.ui())
    status, catalog = server.get("/programs")
    assert status == 200
    for program in catalog["programs"]:
        card = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=program["name"], exact=True))
        expect(card).to_contain_text(program["description"])
        for key in program["config"]:
            expect(card.get_by_role("list", name=f"Config keys of {program['name']}")).to_contain_text(key)
    expect(page.locator("#status")).to_have_text(f"{len(catalog['programs'])} programs")
    screenshot(page, "programs")
    page.get_by_role("link", name="Create a sandbox stack").click()
    expect(page).to_have_url(re.compile(r"/ui/create\.html\?program=sandbox$"))


def test_create_form_has_a_field_per_config_key_with_type_default_and_description(server: Server, page: Page):
    page.goto(server.ui("create.html?program=sandbox"))
    _, program = server.get("/programs/sandbox")
    for name, key in program["config"].items():
        field = page.get_by_label(re.compile(rf"^{name} \("))
        expect(field).to_be_visible()
        expect(page.locator(f'[data-field="config.{name}"]')).to_contain_text(key["type"])
        expect(page.locator(f'[data-field="config.{name}"] .help')).to_contain_text(key["description"])
        if key["secret"]:
            expect(field).to_have_attribute("type", "password")
        elif key["type"] == "boolean":
            expect(field).not_to_be_checked()
        elif key["default"] is not None:
            default = ", ".join(key["default"]) if isinstance(key["default"], list) else str(key["default"])
            expect(field).to_have_value(default)
            expect(page.locator(f'[data-field="config.{name}"] .help')).to_contain_text(f"Default: {default}")
    expect(page.get_by_label("Time to live")).to_have_value("3600")
    screenshot(page, "create")


def test_burner_buttons_show_a_value(server: Server, page: Page):
    page.goto(server.ui("values.html"))
    page.get_by_role("button", name="Get a uuid").click()
    value = page.locator('[data-value="uuid"]')
    expect(value).to_have_text(re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
                               timeout=120_000)
    uuid.UUID(value.text_content() or "")
    page.get_by_label(re.compile(r"^length")).fill("11")
    page.get_by_role("button", name="Get a string").click()
    expect(page.locator('[data-value="string"]')).to_have_text(re.compile(r"^.{11}$"), timeout=120_000)
    expect(page.locator("#status")).to_contain_text("New string")
    screenshot(page, "values")
    # An emptied parameter is left out: the server's default applies (UTC), nothing is refused.
    page.get_by_label(re.compile(r"^tz")).fill("")
    with page.expect_request(re.compile(r"/time(\?.*)?$")) as asked:
        page.get_by_role("button", name="Get a time").click()
    expect(page.locator('[data-value="time"]')).to_have_text(re.compile(r"\d{2}:\d{2}"), timeout=120_000)
    assert asked.value.url.endswith("/time")


def test_a_refused_value_shows_the_servers_message_next_to_its_field(server: Server, page: Page, console):
    console.expect(r"status of 400 \(Bad Request\) \(http://[^/]+/id\?bytes=99\)$")
    status, body = server.get("/id?bytes=99")
    assert (status, body["parameter"]) == (400, "bytes")
    page.goto(server.ui("values.html"))
    field = page.get_by_label(re.compile(r"^bytes"))
    field.fill("99")
    page.get_by_role("button", name="Get an id").click()
    expect(page.locator("#field-bytes-error")).to_have_text(body["description"])
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()


def test_sign_in_refuses_a_wrong_token_and_keeps_the_right_one_for_the_tab(token_server: Server, page: Page,
                                                                           console):
    # The values page asks before anyone signed in, then the wrong token is tried.
    console.expect(r"status of 401 \(Unauthorized\) \(http://[^/]+/(openapi\.json|programs)\)$")
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(token_server.ui("values.html"))
    expect(page).to_have_url(re.compile(r"/ui/signin\.html\?next=%2Fui%2Fvalues\.html&reason=required$"))
    expect(page.get_by_text("This server needs its API token")).to_be_visible()
    field = page.get_by_label("API token")
    expect(field).to_be_focused()
    field.fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("Wrong token"))
    expect(field).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "signin")
    field.fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(token_server.ui("values.html"))
    expect(page.get_by_role("heading", name="uuid", exact=True)).to_be_visible()
    assert page.evaluate("Object.values(sessionStorage)") == [TOKEN]
    page.goto(token_server.ui())
    expect(page.get_by_role("heading", name="sandbox")).to_be_visible()
    assert not [url for url in urls if TOKEN in url]
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/signin\.html"))
    assert page.evaluate("sessionStorage.length") == 0


def test_sign_in_page_says_when_the_server_needs_no_token(server: Server, page: Page):
    page.goto(server.ui("signin.html"))
    expect(page.locator("#status")).to_have_text(re.compile("does not ask for a token"))
    expect(page.get_by_label("API token")).to_be_hidden()
