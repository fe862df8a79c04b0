"""Every page: labelled controls, one heading, no sideways scrolling on a phone, and readable
contrast in both the light and the dark colour scheme."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.portal.browser import DESKTOP, PHONE
from tests.portal.support import Server

pytestmark = pytest.mark.slow

# (page, a locator that is there once the page has loaded); {operation}: one that succeeded.
LOADED = [
    ("", "#programs li"),
    ("create.html?program=sandbox", "#create:not([hidden])"),
    ("stacks.html", "tr[data-stack]"),
    ("operation.html?id={operation}", "#result:not([hidden])"),
    ("values.html", "#values form"),
    ("signin.html", "#status:not(:empty)"),
]


@pytest.fixture(scope="module")
def operation(server: Server) -> Iterator[str]:
    """A sandbox stack's create operation, ended; the stack is destroyed afterwards."""
    status, body = server.call("POST", "/stacks", {"program": "sandbox",
                                                   "config": {"owner": "layout", "access_key": "k"}})
    assert status == 202, body
    server.finished(body["operation"]["id"])
    yield body["operation"]["id"]
    server.finished(server.call("DELETE", f"/stacks/{body['stack']}")[1]["operation"]["id"])

# The WCAG contrast ratio of each element's text on the page background, worst first.
CONTRAST_JS = """(selectors) => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => { const [r, g, b] = c.map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const background = (el) => { for (; el; el = el.parentElement) {
    const c = getComputedStyle(el).backgroundColor; if (!/rgba\\(.*, 0\\)$/.test(c) && c !== 'transparent') return rgb(c); }
    return [255, 255, 255]; };
  const found = [];
  for (const selector of selectors) for (const el of document.querySelectorAll(selector)) {
    if (!el.checkVisibility()) continue;
    found.push([selector, ratio(rgb(getComputedStyle(el).color), background(el))]);
  }
  return found.sort((a, b) => a[1] - b[1]);
}"""
TEXT = ["h1", "p", "label", "a", "button", "li", ".help", "nav a"]

# ARIA attributes that name other elements by id, each id that names nothing.
DANGLING_JS = """() => [...document.querySelectorAll('[aria-controls], [aria-labelledby], [aria-describedby]')]
  .flatMap((el) => ['aria-controls', 'aria-labelledby', 'aria-describedby']
    .flatMap((name) => (el.getAttribute(name) || '').split(/\\s+/).filter(Boolean)
      .filter((id) => !document.getElementById(id)).map((id) => `${name}=${id}`)))"""

# The navigation's links marked as the current page, where they lead.
CURRENT_JS = """() => [...document.querySelectorAll('nav a[aria-current]')]
  .map((a) => [a.getAttribute('aria-current'), new URL(a.href).pathname])"""

UNLABELLED_JS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.checkVisibility())
  .filter((el) => el.tagName === 'BUTTON' ? !(el.getAttribute('aria-label') || el.textContent.trim())
                                          : el.labels.length === 0)
  .map((el) => el.outerHTML)"""


@pytest.mark.parametrize(("path", "ready"), LOADED)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_page_is_labelled_readable_and_fits_a_phone(server: Server, page: Page, operation, path, ready,
                                                    scheme):
    page.emulate_media(color_scheme=scheme)
    page.goto(server.ui(path.format(operation=operation)))
    expect(page.locator(ready).first).to_be_attached()
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    assert page.evaluate(UNLABELLED_JS) == []
    assert page.evaluate(DANGLING_JS) == []
    # The link to this very page says so; a page the menu does not list marks no link.
    unlisted = path.startswith(("create", "operation"))
    assert page.evaluate(CURRENT_JS) == ([] if unlisted else [["page", page.evaluate("location.pathname")]])
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(13, 17, 23)") is (scheme == "dark")
    worst = page.evaluate(CONTRAST_JS, TEXT)
    assert worst and worst[0][1] >= 4.5, worst[:3]
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), size


def test_focus_is_visible_and_the_skip_link_comes_first(server: Server, page: Page):
    page.goto(server.ui())
    expect(page.locator("#programs li").first).to_be_attached()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    # Past the navigation: the first link inside the main content.
    expect(page.get_by_role("link", name="Create a burner stack")).to_be_focused()
