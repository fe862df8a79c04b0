"""The create and update forms with a program whose config keys are awkward: named like the
form's own fields, arrays of integers and booleans, a secret with a default."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect

from tests.portal.browser import Console
from tests.portal.flows import follow_to_the_end, operation_id, sign_in, stack_row
from tests.portal.support import Server

pytestmark = pytest.mark.slow

PIN_DEFAULT = "pin-default-4711"  # tests/portal/programs/fields/Pulumi.yaml


def seconds_to_expiry(record: dict) -> float:
    return (datetime.fromisoformat(record["expires"]) - datetime.fromisoformat(record["updated"])).total_seconds()


def destroy(server: Server, stack: str) -> None:
    status, body = server.call("DELETE", f"/stacks/{stack}")
    assert status == 202, body
    server.finished(body["operation"]["id"])


def test_config_keys_named_name_and_ttl_stay_apart_from_the_stack_name_and_ttl(
        token_server: Server, page: Page, console: Console):
    console.expect(r"status of 400 \(Bad Request\) \(http://[^/]+/stacks\)$")
    # What the server says when the key "ttl" is refused, and when the stack name is.
    key_refused = token_server.call("POST", "/stacks", {"program": "fields", "config": {"ttl": "soon"}})
    name_refused = token_server.call("POST", "/stacks", {"program": "fields", "name": "Not A Name"})
    assert [key_refused[0], key_refused[1]["parameter"], name_refused[1]["parameter"]] == [400, "ttl", "name"]
    sign_in(page, token_server, console)
    page.goto(token_server.ui("create.html?program=fields"))
    stack_name = page.get_by_label(re.compile(r"^Stack name"))
    ttl = page.get_by_label(re.compile(r"^Time to live"))
    key_name = page.get_by_label(re.compile(r"^name \("))
    key_ttl = page.get_by_label(re.compile(r"^ttl \("))
    expect(key_name).to_have_value("box")
    expect(key_ttl).to_have_value("7")
    expect(ttl).to_have_value("3600")
    create = page.get_by_role("button", name="Create stack")

    # The server refuses the config key "ttl": its message is shown at that key.
    key_ttl.fill("soon")
    create.click()
    expect(page.locator("#config-ttl-error")).to_have_text(key_refused[1]["description"])
    expect(key_ttl).to_have_attribute("aria-invalid", "true")
    expect(key_ttl).to_be_focused()
    expect(ttl).not_to_have_attribute("aria-invalid", "true")

    # Then the stack name: its message is shown at the stack name, not at the key "name".
    key_ttl.fill("9")
    stack_name.fill("Not A Name")
    create.click()
    expect(page.locator("#field-name-error")).to_have_text(name_refused[1]["description"])
    expect(stack_name).to_have_attribute("aria-invalid", "true")
    expect(key_name).not_to_have_attribute("aria-invalid", "true")

    stack = f"fields-{uuid.uuid4().hex[:8]}"
    stack_name.fill(stack)
    key_name.fill("crate")
    ttl.select_option(label="15 minutes")
    create.click()
    follow_to_the_end(page)
    operation = token_server.finished(operation_id(page))
    assert operation["stack"] == stack
    assert (operation["outputs"]["name"], operation["outputs"]["ttl"]) == ("crate", 9)
    _, record = token_server.get(f"/stacks/{stack}")
    assert abs(seconds_to_expiry(record) - 900) < 60

    # The update form has both too: the key "ttl" and the stack's time to live.
    page.goto(token_server.ui("stacks.html"))
    stack_row(page, stack).get_by_role("button", name=f"Update {stack}").click()
    editor = page.get_by_role("form", name=f"Update {stack}")
    editor.get_by_label(re.compile(r"^ttl \(")).fill("11")
    editor.get_by_label("Time to live").select_option(label="4 hours from now")
    editor.get_by_role("button", name="Update stack").click()
    follow_to_the_end(page)
    _, record = token_server.get(f"/stacks/{stack}")
    assert (record["config"]["ttl"], record["config"]["name"]) == (11, "crate")
    assert abs(seconds_to_expiry(record) - 4 * 3600) < 60
    destroy(token_server, stack)


def test_typed_arrays_a_hidden_secret_default_and_an_emptied_text_reach_the_stack_once(
        token_server: Server, page: Page, console: Console):
    sign_in(page, token_server, console)
    page.goto(token_server.ui("create.html?program=fields"))
    sizes = page.get_by_label(re.compile(r"^sizes \(array of integer,"))
    flags = page.get_by_label(re.compile(r"^flags \(array of boolean,"))
    expect(sizes).to_have_value("1, 2")
    expect(flags).to_have_value("true")
    # A secret's default is used, never shown: not as the value, not in the help.
    pin = page.get_by_label(re.compile(r"^pin \(string, secret\)"))
    expect(pin).to_have_value("")
    expect(pin).to_have_attribute("type", "password")
    expect(page.locator('[data-field="config.pin"]')).to_contain_text("not shown")
    assert PIN_DEFAULT not in (page.locator("#create").text_content() or "")

    sizes.fill("3, 5, 8")
    flags.fill("true, false")
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    # Submitted twice in a row (a double press of Enter, say): one stack is created.
    page.locator("#create").evaluate("(form) => { form.requestSubmit(); form.requestSubmit(); }")
    follow_to_the_end(page)
    assert [url for url in posts if url.endswith("/stacks")] == [token_server.url + "/stacks"]
    operation = token_server.finished(operation_id(page))
    assert operation["outputs"]["sizes"] == [3, 5, 8]
    assert operation["outputs"]["flags"] == [True, False]
    stack = operation["stack"]
    _, revealed = token_server.get(f"/stacks/{stack}?show_secrets=true")
    assert revealed["outputs"]["pin"] == PIN_DEFAULT
    assert revealed["config"]["pin"] == "[secret]"

    # Emptying a text field on an update clears the value; the secret left empty is kept.
    page.goto(token_server.ui("stacks.html"))
    stack_row(page, stack).get_by_role("button", name=f"Update {stack}").click()
    editor = page.get_by_role("form", name=f"Update {stack}")
    expect(editor.get_by_label(re.compile(r"^sizes \("))).to_have_value("3, 5, 8")
    expect(editor.get_by_label(re.compile(r"^flags \("))).to_have_value("true, false")
    assert PIN_DEFAULT not in (editor.text_content() or "")
    name = editor.get_by_label(re.compile(r"^name \("))
    expect(name).to_have_value("box")
    name.fill("")
    editor.get_by_role("button", name="Update stack").click()
    follow_to_the_end(page)
    _, record = token_server.get(f"/stacks/{stack}?show_secrets=true")
    assert record["config"]["name"] == ""
    assert record["outputs"]["name"] in ("", None)
    assert record["outputs"]["pin"] == PIN_DEFAULT
    destroy(token_server, stack)
