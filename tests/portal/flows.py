"""What a person does in the portal, as steps the tests share: sign in, find a stack's row,
follow an operation to its end."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.portal.browser import Console
from tests.portal.support import TOKEN, Server

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


def sign_in(page: Page, server: Server, console: Console) -> None:
    # Landing on the sign-in page, it asks whether the server wants a token at all: 401.
    console.expect(r"status of 401 \(Unauthorized\) \(http://[^/]+/programs\)$")
    page.goto(server.ui("signin.html"))
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Programs")).to_be_visible()


def stack_row(page: Page, name: str) -> Locator:
    return page.locator(f'tr[data-stack="{name}"]')
