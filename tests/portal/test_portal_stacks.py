"""Stacks from the portal, as a person would: create from the form, watch the events, read the
outputs, update, destroy; sign-in and reveal; a dropped stream that resumes; keyboard only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from playwright.sync_api import Page, Request, expect

from tests.harness import wait_for
from tests.portal.browser import Console, screenshot
from tests.portal.proxy import CuttableRelay
from tests.portal.support import TOKEN, Server

pytestmark = pytest.mark.slow

OPERATION_URL = re.compile(r"/ui/operation\.html\?id=([\w-]+)$")
# An operation can take a while on a busy 2-core machine.
LONG = 180_000


def operation_id(page: Page) -> str:
    expect(page).to_have_url(OPERATION_URL, timeout=60_000)
    match = OPERATION_URL.search(page.url)
    assert match is not None
    return match.group(1)


def follow_to_the_end(page: Page, status: str = "succeeded") -> None:
    expect(page.locator('[data-fact="status"]')).to_have_text(status, timeout=LONG)
    expect(page.locator("#result")).to_be_visible()


def shown_sequence(page: Page) -> list[int]:
    return [int(seq) for seq in page.locator("#events li").evaluate_all("(items) => items.map((li) => li.dataset.seq)")]


def assert_every_event_shown_once(page: Page, server: Server, operation: str) -> None:
    events = server.events(operation)
    assert events, "the operation has no events"
    assert shown_sequence(page) == [event["seq"] for event in events]


def sign_in(page: Page, server: Server, console: Console) -> None:
    # Landing on the sign-in page, it asks whether the server wants a token at all: 401.
    console.expect(r"status of 401 \(Unauthorized\) \(http://[^/]+/programs\)$")
    page.goto(server.ui("signin.html"))
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Programs")).to_be_visible()


def stack_row(page: Page, name: str):
    return page.locator(f'tr[data-stack="{name}"]')


def test_a_sandbox_stack_from_the_form_to_its_destruction(server: Server, page: Page):
    page.goto(server.ui())
    page.get_by_role("link", name="Create a sandbox stack").click()
    page.get_by_label(re.compile(r"^owner")).fill("ada")
    page.get_by_label(re.compile(r"^words")).fill("3")
    page.get_by_label(re.compile(r"^access_key")).fill("k3y-of-ada")
    page.get_by_role("button", name="Create stack").click()
    created = operation_id(page)

    follow_to_the_end(page)
    operation = server.finished(created)
    assert (operation["kind"], operation["status"]) == ("create", "succeeded")
    stack = operation["stack"]
    expect(page.locator('[data-fact="stack"]')).to_have_text(stack)
    assert_every_event_shown_once(page, server, created)
    expect(page.locator("#events")).to_contain_text("create done")
    progress = page.locator("#progress")
    assert progress.evaluate("(bar) => bar.value === bar.max && bar.max > 1")
    expect(page.locator("#summary")).to_contain_text("Changes: ")
    took = (datetime.fromisoformat(operation["finished"]) - datetime.fromisoformat(operation["started"])).total_seconds()
    expect(page.locator("#duration")).to_have_text(re.compile(r"^Duration: \d+\.\d s, from start to succeeded\.$"))
    shown = float((page.locator("#duration").text_content() or "").split()[1])
    assert abs(shown - took) <= 0.051
    outputs = operation["outputs"]
    assert outputs["password"] == "[secret]"
    expect(page.locator('#outputs [data-output="name"]')).to_have_text(outputs["name"])
    assert outputs["name"].startswith("ada-")
    expect(page.locator('#outputs [data-output="password"]')).to_contain_text("(secret)")
    screenshot(page, "operation")

    page.get_by_role("link", name="Back to the stacks").click()
    row = stack_row(page, stack)
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("sandbox")
    expect(row.locator("time")).to_have_text(re.compile(r"^(\d+m )?\d+s$"))
    expect(row.locator('[data-output="name"]')).to_have_text(outputs["name"])
    expect(row.locator('[data-output="password"]')).to_contain_text("(secret)")
    # No token on this server: nobody may reveal, so no button offers it.
    expect(row.get_by_role("button", name=re.compile("Reveal"))).to_have_count(0)
    screenshot(page, "stacks")

    row.get_by_role("button", name=f"Update {stack}").click()
    editor = page.get_by_role("form", name=f"Update {stack}")
    editor.get_by_label(re.compile(r"^words")).fill("4")
    screenshot(page, "update")
    editor.get_by_role("button", name="Update stack").click()
    updated = operation_id(page)
    follow_to_the_end(page)
    assert server.finished(updated)["kind"] == "update"
    status, after_update = server.get(f"/stacks/{stack}")
    assert status == 200 and after_update["config"]["words"] == 4
    assert after_update["config"]["owner"] == "ada"

    page.goto(server.ui("stacks.html"))
    stack_row(page, stack).get_by_role("button", name=f"Destroy {stack}").click()
    dialog = page.get_by_role("dialog", name="Destroy stack?")
    expect(dialog).to_contain_text(stack)
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    screenshot(page, "destroy")
    dialog.get_by_role("button", name="Destroy").click()
    destroyed = operation_id(page)
    follow_to_the_end(page)
    assert server.finished(destroyed)["kind"] == "destroy"

    page.get_by_role("link", name="Back to the stacks").click()
    expect(page.locator("#status")).to_have_text(re.compile(r"\d+ stacks?|0 stacks"))
    expect(stack_row(page, stack)).to_have_count(0)
    assert server.get(f"/stacks/{stack}")[0] == 404


def test_keeping_a_stack_closes_the_dialog_and_destroys_nothing(server: Server, page: Page):
    status, body = server.call("POST", "/stacks", {"program": "sandbox", "config": {"owner": "kept", "access_key": "k"}})
    assert status == 202, body
    server.finished(body["operation"]["id"])
    page.goto(server.ui("stacks.html"))
    button = stack_row(page, body["stack"]).get_by_role("button", name=f"Destroy {body['stack']}")
    button.click()
    page.get_by_role("dialog").get_by_role("button", name="Keep it").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(button).to_be_focused()
    assert server.get(f"/stacks/{body['stack']}")[1]["status"] == "ready"
    server.finished(server.call("DELETE", f"/stacks/{body['stack']}")[1]["operation"]["id"])


def test_a_refused_config_value_shows_the_servers_message_next_to_its_field(server: Server, page: Page, console):
    console.expect(r"status of 400 \(Bad Request\) \(http://[^/]+/stacks\)$")
    status, refused = server.call("POST", "/stacks", {"program": "sandbox", "ttl": 3600,
                                                       "config": {"owner": "bo", "words": "many", "access_key": "k"}})
    assert (status, refused["parameter"]) == (400, "words"), refused
    page.goto(server.ui("create.html?program=sandbox"))
    page.get_by_label(re.compile(r"^owner")).fill("bo")
    words = page.get_by_label(re.compile(r"^words"))
    words.fill("many")
    page.get_by_label(re.compile(r"^access_key")).fill("k")
    page.get_by_role("button", name="Create stack").click()
    expect(page.locator("#field-words-error")).to_have_text(refused["description"])
    expect(words).to_have_attribute("aria-invalid", "true")
    expect(words).to_be_focused()
    expect(page.get_by_role("alert").filter(has_text="words")).to_be_visible()
    expect(page).to_have_url(re.compile(r"create\.html"))
    screenshot(page, "create-refused")


def test_a_stack_created_and_destroyed_with_the_keyboard_alone(server: Server, page: Page):
    page.goto(server.ui("create.html?program=sandbox"))
    expect(page.locator("#create")).to_be_visible()

    def tab_to(selector: str, limit: int = 30) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#field-owner")
    page.keyboard.type("kbd")
    tab_to("#field-special")
    page.keyboard.press("Space")
    tab_to("#field-access_key")
    page.keyboard.type("typed-key")
    tab_to("#field-ttl")
    page.keyboard.press("ArrowDown")  # 1 hour -> 4 hours
    tab_to("#submit")
    page.keyboard.press("Enter")
    created = operation_id(page)
    follow_to_the_end(page)
    operation = server.finished(created)
    stack = operation["stack"]
    _, record = server.get(f"/stacks/{stack}")
    assert record["config"]["owner"] == "kbd" and record["config"]["special"] is True
    assert record["config"]["access_key"] == "[secret]"

    tab_to('a[href="stacks.html"]:not([aria-current])')
    page.keyboard.press("Enter")
    expect(stack_row(page, stack)).to_be_visible()
    tab_to(f'tr[data-stack="{stack}"] button.danger')
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    destroyed = operation_id(page)
    follow_to_the_end(page)
    assert server.finished(destroyed)["kind"] == "destroy"


def test_a_signed_in_caller_reveals_secret_outputs(token_server: Server, page: Page, console: Console):
    status, body = token_server.call("POST", "/stacks", {"program": "sandbox",
                                                         "config": {"owner": "eve", "access_key": "sesame"}})
    assert status == 202, body
    token_server.finished(body["operation"]["id"])
    stack = body["stack"]
    _, revealed = token_server.get(f"/stacks/{stack}?show_secrets=true")
    sign_in(page, token_server, console)
    page.goto(token_server.ui("stacks.html"))
    row = stack_row(page, stack)
    expect(row.locator('[data-output="password"]')).to_contain_text("(secret)")
    reveal = row.get_by_role("button", name=f"Reveal the secrets of {stack}")
    reveal.click()
    expect(row.locator('[data-output="password"]')).to_have_text(revealed["outputs"]["password"])
    expect(reveal).to_have_attribute("aria-pressed", "true")
    reveal.click()
    expect(row.locator('[data-output="password"]')).to_contain_text("(secret)")
    token_server.finished(token_server.call("DELETE", f"/stacks/{stack}")[1]["operation"]["id"])


@pytest.fixture
def relay(token_server: Server) -> Iterator[CuttableRelay]:
    relay = CuttableRelay(token_server.process.port)
    try:
        yield relay
    finally:
        relay.close()


def test_the_event_stream_resumes_after_a_network_drop_without_losing_lines(token_server: Server, page: Page,
                                                                           relay: CuttableRelay, console: Console):
    console.expect(r"status of 401 \(Unauthorized\) \(http://[^/]+/programs\)$")
    # Chromium logs the stream it lost when the relay cut it.
    console.expect(r"net::ERR_INCOMPLETE_CHUNKED_ENCODING \(http://[^/]+/operations/[\w-]+/events\?")
    streams: list[Request] = []
    page.on("request", lambda request: streams.append(request) if "/events" in request.url else None)
    through = Server(token_server.process, TOKEN)
    page.goto(f"{relay.url}/ui/signin.html")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="slow")).to_be_visible()
    page.goto(f"{relay.url}/ui/create.html?program=slow")
    page.get_by_label(re.compile(r"^resources")).fill("8")
    page.get_by_label(re.compile(r"^pause_ms")).fill("1500")
    page.get_by_role("button", name="Create stack").click()
    created = operation_id(page)
    # The stream is open (its first event is shown) and the program is still on its way.
    expect(page.locator("#events li").first).to_have_text(re.compile("status: running"), timeout=LONG)
    assert through.get(f"/operations/{created}")[1]["status"] == "running"
    assert relay.cut() >= 1
    follow_to_the_end(page)
    assert through.finished(created)["status"] == "succeeded"
    assert_every_event_shown_once(page, through, created)
    # It did reconnect (from where it was), and never put the token in an address.
    assert len(streams) >= 2
    resumed = streams[-1]
    assert resumed.all_headers().get("last-event-id") or "after=" in resumed.url
    assert all("ticket=" in request.url and TOKEN not in request.url for request in streams)
    wait_for(lambda: through.call("DELETE", f"/stacks/{through.finished(created)['stack']}")[0] == 202,
             what="the stack to be destroyed")


def test_cancel_stops_a_running_operation(token_server: Server, page: Page, console: Console):
    sign_in(page, token_server, console)
    page.goto(token_server.ui("create.html?program=slow"))
    page.get_by_label(re.compile(r"^resources")).fill("20")
    page.get_by_label(re.compile(r"^pause_ms")).fill("1500")
    page.get_by_role("button", name="Create stack").click()
    created = operation_id(page)
    cancel = page.get_by_role("button", name="Cancel operation")
    expect(page.locator('[data-fact="status"]')).to_have_text("running", timeout=LONG)
    expect(cancel).to_be_visible()
    cancel.click()
    follow_to_the_end(page, "cancelled")
    expect(cancel).to_be_hidden()
    assert token_server.finished(created)["status"] == "cancelled"


def test_a_failing_program_shows_its_diagnostics_and_error(server: Server, page: Page):
    page.goto(server.ui("create.html?program=sandbox"))
    page.get_by_label(re.compile(r"^owner")).fill("fay")
    page.get_by_label(re.compile(r"^words")).fill("9")  # the program allows 1-5
    page.get_by_label(re.compile(r"^access_key")).fill("k")
    page.get_by_role("button", name="Create stack").click()
    created = operation_id(page)
    follow_to_the_end(page, "failed")
    operation = server.finished(created)
    assert operation["status"] == "failed" and operation["error"]
    diagnostics = [event["data"] for event in server.events(created) if event["type"] == "diagnostic"]
    assert diagnostics
    for diagnostic in diagnostics:
        expect(page.locator("#events")).to_contain_text(f"{diagnostic['severity']}: {diagnostic['message']}")
    expect(page.locator("#error")).to_have_text(f"{operation['error']['code']}: {operation['error']['message']}")
    expect(page.get_by_role("button", name="Cancel operation")).to_be_hidden()
    assert_every_event_shown_once(page, server, created)
    # A create that failed leaves no stack behind.
    assert server.get(f"/stacks/{operation['stack']}")[0] == 404


def test_an_expired_stream_ticket_is_replaced_and_the_stream_goes_on_after_the_last_event(
        token_server: Server, page: Page, relay: CuttableRelay, console: Console):
    console.expect(r"status of 401 \(Unauthorized\) \(http://[^/]+/programs\)$")
    console.expect(r"net::ERR_INCOMPLETE_CHUNKED_ENCODING \(http://[^/]+/operations/[\w-]+/events\?")
    # The browser's own reconnection still carries the old ticket: refused once it has expired.
    console.expect(r"status of 401 \(Unauthorized\) \(http://[^/]+/operations/[\w-]+/events\?ticket=")
    streams: list[Request] = []
    page.on("request", lambda request: streams.append(request) if "/events" in request.url else None)
    through = Server(token_server.process, TOKEN)
    page.goto(f"{relay.url}/ui/signin.html")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="slow")).to_be_visible()
    page.goto(f"{relay.url}/ui/create.html?program=slow")
    page.get_by_label(re.compile(r"^resources")).fill("60")
    page.get_by_label(re.compile(r"^pause_ms")).fill("1500")  # 90 s
    page.get_by_role("button", name="Create stack").click()
    created = operation_id(page)
    expect(page.locator("#events li").first).to_have_text(re.compile("status: running"), timeout=LONG)
    first_ticket = streams[0].url.split("ticket=")[1].split("&")[0]
    page.wait_for_timeout(62_000)  # tickets last 60 s
    assert through.get(f"/operations/{created}")[1]["status"] == "running"
    assert relay.cut() >= 1
    follow_to_the_end(page)
    assert_every_event_shown_once(page, through, created)
    # The old ticket was refused, and the page went on with a new one from the last event shown.
    assert any("status of 401" in error and "/events?ticket=" in error for error in console.errors)
    resumed = streams[-1]
    assert re.search(r"[?&]after=[1-9]\d*", resumed.url), resumed.url
    assert first_ticket not in resumed.url
    assert all(TOKEN not in request.url for request in streams)
    through.finished(through.call("DELETE", f"/stacks/{through.finished(created)['stack']}")[1]["operation"]["id"])


def test_the_stacks_page_follows_a_stack_being_created_and_destroyed(token_server: Server, page: Page,
                                                                    console: Console):
    sign_in(page, token_server, console)
    status, body = token_server.call("POST", "/stacks", {"program": "slow", "config": {"resources": 4}})
    assert status == 202, body
    stack = body["stack"]
    page.goto(token_server.ui("stacks.html"))
    row = stack_row(page, stack)
    expect(row).to_contain_text("creating")
    # No click on Refresh: the page follows the stack by itself and says so.
    expect(page.locator("#status")).to_have_text(f"Stack {stack} is now ready.", timeout=LONG)
    expect(row).to_contain_text("ready")
    expect(row.locator('[data-output="pets"]')).not_to_be_empty()
    status, body = token_server.call("DELETE", f"/stacks/{stack}")
    assert status == 202, body
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#status")).to_have_text(f"Stack {stack} is gone.", timeout=LONG)
    expect(row).to_have_count(0)
    assert token_server.finished(body["operation"]["id"])["status"] == "succeeded"
