"""A real headless Chromium (Debian's package) driven by Playwright, and what the tests watch."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Error, Page, ViewportSize

from infra.settings import PROJECT_ROOT

SCREENSHOT_DIR = PROJECT_ROOT / "docs" / "ui"
# Keep the browser off the network: no first-run, no background fetches, no updates, no sync.
CHROMIUM_ARGS = ["--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-default-browser-check", "--disable-default-apps"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def chromium_executable() -> Path:
    """Debian's chromium; the Makefile's `chromium` target installs it."""
    found = shutil.which("chromium") or "/usr/bin/chromium"
    path = Path(found)
    if not path.exists():
        raise RuntimeError("no chromium found: run 'make chromium' (apt-get install chromium)")
    return path


@dataclass
class Console:
    """Console errors and uncaught exceptions of a page; `expect` names the allowed ones."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def expect(self, pattern: str) -> None:
        """Allow console errors matching ``pattern`` (a status the test provokes on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text} ({message.location.get('url')})")

    def _on_page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error.message}")


def screenshot(page: Page, name: str) -> None:
    """docs/ui/<name>-desktop.png (light) and <name>-phone.png (dark), full page."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    try:
        page.set_viewport_size(DESKTOP)
        page.emulate_media(color_scheme="light")
        page.screenshot(path=SCREENSHOT_DIR / f"{name}-desktop.png", full_page=True, animations="disabled")
        page.set_viewport_size(PHONE)
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=SCREENSHOT_DIR / f"{name}-phone.png", full_page=True, animations="disabled")
    finally:
        page.emulate_media(color_scheme="light")
        if size:
            page.set_viewport_size(size)
