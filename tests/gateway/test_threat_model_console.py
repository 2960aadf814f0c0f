"""The threat model's console line: the console keeps its key in the tab, out of every URL,
cookie and localStorage (headless Chromium against the gateway served in-process)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.gateway.test_responses import serving
from tests.gateway.test_threat_model import CHROMIUM, World
from tests.gateway.test_threat_model import world as world  # the fixture, shared
from tokenmill.gateway.app import build_app


def _browser_or_skip() -> Any:
    """Playwright's async entry point; without it or Chromium the test is skipped (failed
    under ``CI``), as the end-to-end console tests are."""
    reason = f"needs playwright and {CHROMIUM} (make test installs them)"
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        async_playwright = None  # type: ignore[assignment]
    if shutil.which(CHROMIUM) is not None and async_playwright is not None:
        return async_playwright
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


async def test_the_console_keeps_its_key_in_the_tab_and_out_of_every_url(world: World) -> None:
    """Signed in and moved between pages, the console holds the key in sessionStorage (gone
    with the tab), never in localStorage or a cookie, and sends it in the Authorization header
    of its calls, never in a URL."""
    async_playwright = _browser_or_skip()
    secret = world.k.platform
    async with serving(build_app(world.gateway.services)) as base, async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = await browser.new_context()
            page = await context.new_page()
            urls: list[str] = []
            sent_with_key: list[str] = []

            def seen(request: Any) -> None:
                urls.append(request.url)
                if request.headers.get("authorization") == f"Bearer {secret}":
                    sent_with_key.append(request.url)

            page.on("request", seen)
            await page.goto(f"{base}/console/")
            await page.fill("#signin-key", secret)
            await page.click("form button[type=submit]")
            await page.wait_for_selector("#page-overview .stat", timeout=60_000)
            for name in ("keys", "usage", "overview"):
                await page.evaluate(f"location.hash = '#/{name}'")
                await page.wait_for_selector(f"#page-{name}", state="attached", timeout=60_000)
            await page.wait_for_load_state("networkidle")
            stored = await page.evaluate(
                "() => [sessionStorage.getItem('tokenmill.key'), localStorage.length,"
                " document.cookie]"
            )
            assert stored == [secret, 0, ""]
            assert await context.cookies() == []
            assert len(sent_with_key) >= 3  # the calls carried it, in their header
            assert all(secret not in url and secret[3:15] not in url for url in urls), urls
            assert secret not in page.url
            other = await (await browser.new_context()).new_page()  # another tab's session
            await other.goto(f"{base}/console/")
            assert await other.evaluate("sessionStorage.getItem('tokenmill.key')") is None
        finally:
            await browser.close()
