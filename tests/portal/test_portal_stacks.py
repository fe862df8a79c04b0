"""Stacks from the portal, as a person would: create from the form, watch the events, read the
outputs, update, destroy; sign-in and reveal; a dropped stream that resumes; keyboard only;
stacks that go away elsewhere or expire; actions that are sent once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.harness import wait_for
from tests.portal.browser import Console, screenshot
from tests.portal.flows import LONG, follow_to_the_end, operation_id, sign_in, stack_row
from tests.portal.proxy import CuttableRelay
from tests.portal.support import TOKEN, Server

pytestmark = pytest.mark.slow


# Whether the operation page ever showed its Cancel button, however briefly (it starts hidden).
CANCEL_WATCH_JS = """window.cancelOffered = false;
new MutationObserver((records) => {
  for (const record of records) {
    if (record.target.id === 'cancel' && (record.oldValue === null || !record.target.hidden)) {
      window.cancelOffered = true;
    }
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['hidden'], attributeOldValue: true });"""


def shown_sequence(page: Page) -> list[int]:
    return [int(seq) for seq in page.locator("#events li").evaluate_all("(items) => items.map((li) => li.dataset.seq)")]


def assert_every_event_shown_once(page: Page, server: Server, operation: str) -> None:
    events = server.events(operation)
    assert events, "the operation has no events"
    assert shown_sequence(page) == [event["seq"] for event in events]


def test_a_sandbox_stack_from_the_form_to_its_destruction(server: Server, page: Page):
    page.add_init_script(CANCEL_WATCH_JS)
    page.goto(server.ui())
    page.get_by_role("link", name="Create a sandbox stack").click()
    page.get_by_label(re.compile(r"^owner")).fill("ada")
    page.get_by_label(re.compile(r"^words")).fill("3")
    page.get_by_label(re.compile(r"^access_key")).fill("k3y-of-ada")
    page.get_by_role("button", name="Create stack").click()
    created = operation_id(page)

    follow_to_the_end(page)
    assert page.evaluate("window.cancelOffered") is True
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

    update = row.get_by_role("button", name=f"Update {stack}")
    update.click()
    editor = page.get_by_role("form", name=f"Update {stack}")
    expect(editor).to_be_visible()
    expect(page.locator(f'[id="{update.get_attribute("aria-controls")}"]').get_by_role("form")).to_be_visible()
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
    # The API never cancels a destroy: the page never offers to, not even while it runs.
    assert page.evaluate("window.cancelOffered") is False

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
    expect(page.locator("#config-words-error")).to_have_text(refused["description"])
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

    tab_to("#config-owner")
    page.keyboard.type("kbd")
    tab_to("#config-special")
    page.keyboard.press("Space")
    tab_to("#config-access_key")
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


def test_a_lost_cancel_request_leaves_no_error_once_the_operation_succeeds(token_server: Server, page: Page,
                                                                          console: Console):
    sign_in(page, token_server, console)
    console.expect(r"net::ERR_FAILED \(http://[^/]+/operations/[\w-]+/cancel\)$")
    page.route(re.compile(r"/operations/[\w-]+/cancel$"), lambda route: route.abort())
    page.goto(token_server.ui("create.html?program=slow"))
    page.get_by_label(re.compile(r"^resources")).fill("4")
    page.get_by_label(re.compile(r"^pause_ms")).fill("1500")
    page.get_by_role("button", name="Create stack").click()
    created = operation_id(page)
    expect(page.locator('[data-fact="status"]')).to_have_text("running", timeout=LONG)
    page.get_by_role("button", name="Cancel operation").click()
    expect(page.locator("#error")).to_contain_text("Network error")
    follow_to_the_end(page)
    # The operation went on and succeeded: an error about the request is no longer true.
    expect(page.locator("#error")).to_be_empty()
    stack = token_server.finished(created)["stack"]
    token_server.finished(token_server.call("DELETE", f"/stacks/{stack}")[1]["operation"]["id"])


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
    # The page's first look at how the stacks are doing is lost on the way.
    console.expect(r"net::ERR_FAILED \(http://[^/]+/stacks\?limit=100\)$")
    looks: list[str] = []

    def first_look_lost(route: Route) -> None:
        looks.append(route.request.url)
        if len(looks) == 1:
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r"/stacks\?limit=100$"), first_look_lost)
    status, body = token_server.call("POST", "/stacks", {"program": "slow", "config": {"resources": 4}})
    assert status == 202, body
    stack = body["stack"]
    page.goto(token_server.ui("stacks.html"))
    row = stack_row(page, stack)
    expect(row).to_contain_text("creating")
    expect(page.locator("#error")).to_contain_text("Could not follow the stacks")
    # No click on Refresh: the page follows the stack by itself and says so.
    expect(page.locator("#status")).to_have_text(f"Stack {stack} is now ready.", timeout=LONG)
    expect(page.locator("#error")).to_be_empty()
    assert len(looks) >= 2
    expect(row).to_contain_text("ready")
    expect(row.locator('[data-output="pets"]')).not_to_be_empty()
    status, body = token_server.call("DELETE", f"/stacks/{stack}")
    assert status == 202, body
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#status")).to_have_text(f"Stack {stack} is gone.", timeout=LONG)
    expect(row).to_have_count(0)
    assert token_server.finished(body["operation"]["id"])["status"] == "succeeded"


def create_fields_stacks(server: Server, *ttls: int | None) -> list[str]:
    """Stacks of the fields program (no resources: quick), one per TTL, all created."""
    accepted = []
    for ttl in ttls:
        status, body = server.call("POST", "/stacks", {"program": "fields", **({"ttl": ttl} if ttl else {})})
        assert status == 202, body
        accepted.append(body)
    for body in accepted:
        assert server.finished(body["operation"]["id"])["status"] == "succeeded"
    return [body["stack"] for body in accepted]


def settled(server: Server) -> None:
    """Wait until no stack on the server is being created, updated or destroyed (other tests'
    teardowns), so that a stacks page has nothing to follow by itself."""
    def calm() -> bool:
        status, body = server.get("/stacks?limit=100")
        assert status == 200, body
        return not any(stack["status"] in ("creating", "updating", "destroying") for stack in body["stacks"])
    wait_for(calm, timeout=120, what="the server's stacks to settle")


def test_stacks_destroyed_elsewhere_or_expired_leave_the_list(token_server: Server, page: Page,
                                                              console: Console):
    settled(token_server)
    sign_in(page, token_server, console)
    console.expect(r"status of 404 \(Not Found\) \(http://[^/]+/stacks/fields-[\w-]+\)$")
    updated_away, destroyed_away = create_fields_stacks(token_server, None, None)
    page.goto(token_server.ui("stacks.html"))
    expect(stack_row(page, updated_away)).to_contain_text("ready")
    stack_row(page, updated_away).get_by_role("button", name=f"Update {updated_away}").click()
    editor = page.get_by_role("form", name=f"Update {updated_away}")
    for stack in (updated_away, destroyed_away):
        status, body = token_server.call("DELETE", f"/stacks/{stack}")
        assert status == 202, body
        token_server.finished(body["operation"]["id"])

    # Updating or destroying a stack that is gone by now: the page says so and drops its row.
    editor.get_by_label(re.compile(r"^ttl \(")).fill("8")
    editor.get_by_role("button", name="Update stack").click()
    expect(page.locator("#status")).to_have_text(f"Stack {updated_away} is gone.")
    expect(stack_row(page, updated_away)).to_have_count(0)
    expect(editor).to_have_count(0)
    stack_row(page, destroyed_away).get_by_role("button", name=f"Destroy {destroyed_away}").click()
    page.get_by_role("dialog").get_by_role("button", name="Destroy").click()
    expect(page.locator("#status")).to_have_text(f"Stack {destroyed_away} is gone.")
    expect(stack_row(page, destroyed_away)).to_have_count(0)
    expect(page.locator("#error")).to_be_empty()

    # A stack whose time runs out leaves the list by itself, without a click on Refresh.
    (expiring,) = create_fields_stacks(token_server, 15)
    page.get_by_role("button", name="Refresh").click()
    row = stack_row(page, expiring)
    expect(row).to_contain_text("ready")
    expect(row.locator("time")).to_have_text("expired", timeout=30_000)
    expect(page.locator("#status")).to_have_text(f"Stack {expiring} is gone.", timeout=LONG)
    expect(row).to_have_count(0)
    assert token_server.get(f"/stacks/{expiring}")[0] == 404


def test_a_stacks_actions_wait_for_their_answer_and_are_sent_once(token_server: Server, page: Page,
                                                                 console: Console):
    page.add_init_script(CANCEL_WATCH_JS)
    sign_in(page, token_server, console)
    (stack,) = create_fields_stacks(token_server, None)
    # Requests about the stack are held until the test lets them through.
    held: list[Route] = []
    sent: list[str] = []
    about_stack = re.compile(rf"/stacks/{stack}(\?show_secrets=true)?$")
    page.route(about_stack, lambda route: held.append(route))
    page.on("request", lambda request: sent.append(request.method) if about_stack.search(request.url) else None)
    page.goto(token_server.ui("stacks.html"))
    row = stack_row(page, stack)

    reveal = row.get_by_role("button", name=f"Reveal the secrets of {stack}")
    reveal.click()
    expect(reveal).to_be_disabled()
    held.pop(0).continue_()
    expect(row.locator('[data-output="pin"]')).to_have_text("pin-default-4711")
    expect(reveal).to_be_enabled()

    row.get_by_role("button", name=f"Update {stack}").click()
    editor = page.get_by_role("form", name=f"Update {stack}")
    editor.get_by_label(re.compile(r"^ttl \(")).fill("8")
    # Submitted twice in a row (a double press of Enter, say): one update is sent.
    editor.evaluate("(form) => { form.requestSubmit(); form.requestSubmit(); }")
    expect(editor.get_by_role("button", name="Update stack")).to_be_disabled()
    held.pop(0).continue_()
    updated = operation_id(page)
    follow_to_the_end(page)
    assert token_server.finished(updated)["kind"] == "update"
    assert sent.count("PATCH") == 1, sent
    assert page.evaluate("window.cancelOffered") is True  # an update can be cancelled

    page.goto(token_server.ui("stacks.html"))
    destroy = row.get_by_role("button", name=f"Destroy {stack}")
    destroy.click()
    page.get_by_role("dialog").get_by_role("button", name="Destroy").click()
    expect(destroy).to_be_disabled()
    held.pop(0).continue_()
    destroyed = operation_id(page)
    follow_to_the_end(page)
    assert token_server.finished(destroyed)["kind"] == "destroy"
    assert sent.count("DELETE") == 1, sent
    assert page.evaluate("window.cancelOffered") is False
