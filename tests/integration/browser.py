"""Headless Chromium from Debian's packages, driven by Playwright (no browser download), and a
small page object for the dashboard. Used by the browser tests, scripts/screenshot and
benchmarks/bench_dashboard.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
#: What works here as root; Playwright adds --headless, --no-sandbox and a fresh profile.
CHROMIUM_FLAGS = [
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
WAIT_MS = 30_000
LOAD_MS = 10_000
LOAD_ATTEMPTS = 3


def missing_browser() -> str:
    """Why no browser can run here, or "" when one can."""
    try:
        import playwright.async_api  # noqa: F401, PLC0415
    except ImportError:
        return "the Python package playwright is missing: run scripts/setup"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install -y chromium): run scripts/setup"
    return ""


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """One headless Chromium; each `new_context()` of it is a fresh session (own storage)."""
    from playwright.async_api import async_playwright  # noqa: PLC0415

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


try:
    from playwright.async_api import TimeoutError as PlaywrightTimeoutError
except ImportError:  # missing_browser() says so
    PlaywrightTimeoutError = TimeoutError  # noqa: N816


class Dashboard:
    """The dashboard in one page: open it, give the token, find tiles and log lines."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))

    async def open(self, token: str | None = None) -> None:
        """Load the page; with `token`, answer the token prompt it shows.

        A browser on the Docker host aborts requests in flight whenever the engine adds or
        removes a network interface (ERR_NETWORK_CHANGED; every container start does). The page
        retries its own calls, but a script file lost that way leaves it dead: load it again."""
        await self.page.goto(self.url + "/")
        await self._until_loaded()
        if token is not None:
            await self.give_token(token)

    async def reload(self) -> None:
        """Load the page again in the same session, as robustly as `open` loads it."""
        await self.page.reload()
        await self._until_loaded()

    async def _until_loaded(self) -> None:
        for _ in range(LOAD_ATTEMPTS - 1):
            try:
                await self.page.locator("html[data-ready]").wait_for(state="attached", timeout=LOAD_MS)
                break
            except PlaywrightTimeoutError:
                await self.page.reload()

    async def give_token(self, token: str) -> None:
        try:
            await self.page.locator("#token-dialog").wait_for(state="visible", timeout=WAIT_MS)
        except Exception as exc:
            raise AssertionError(f"no token prompt; page errors {self.errors}, console {self.console}") from exc
        await self.page.fill("#token-input", token)
        await self.page.click("#token-form button[type=submit]")

    @property
    def policy_violations(self) -> list[str]:
        """What the Content-Security-Policy blocked (the page must need no exception)."""
        return [line for line in self.console if "Content Security Policy" in line]

    async def wait_live(self) -> None:
        await self.page.locator('#connection[data-state="live"]').wait_for(timeout=WAIT_MS)

    def tiles(self, stack: str, service: str) -> Any:
        return self.page.locator(f'li.tile[data-stack="{stack}"][data-service="{service}"]')

    def tile(self, stack: str, service: str, slot: int) -> Any:
        return self.page.locator(
            f'li.tile[data-stack="{stack}"][data-service="{service}"][data-slot="{slot}"]')

    def button(self, action: str, stack: str, service: str | None = None) -> Any:
        selector = f'button[data-action="{action}"][data-stack="{stack}"]'
        if service is not None:
            selector += f'[data-service="{service}"]'
        return self.page.locator(selector)

    def log_lines(self, text: str = "") -> Any:
        lines = self.page.locator("#event-log li")
        return lines.filter(has_text=text) if text else lines

    async def confirm(self) -> None:
        await self.page.click("#confirm-ok")
        await self.page.locator("#confirm-dialog").wait_for(state="hidden", timeout=WAIT_MS)
