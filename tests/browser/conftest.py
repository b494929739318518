"""A real Chromium (Debian's `chromium`) driven by Playwright; a screenshot when a test fails."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("CSMS_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Where failing tests leave their screenshot (CI keeps the folder as an artifact).
ARTIFACTS = Path(os.environ.get("CSMS_TEST_ARTIFACTS", "test-artifacts"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[Any]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


# A phone, as Chromium's device emulation draws it: a 390x844 CSS-pixel screen at 3x, touch,
# and the mobile viewport rules (the page's <meta name="viewport"> applies).
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


@asynccontextmanager
async def opened_page(
    browser: Browser, request: pytest.FixtureRequest, **options: Any
) -> AsyncIterator[Page]:
    """A page in a new context; its screenshot goes to test-artifacts/ when the test fails."""
    context = await browser.new_context(**options)
    opened = await context.new_page()
    try:
        yield opened
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
            name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
            await opened.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        await context.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A 1280x800 page; its screenshot goes to test-artifacts/ when the test fails."""
    async with opened_page(browser, request, viewport={"width": 1280, "height": 800}) as opened:
        yield opened


@pytest.fixture
async def phone(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page on an emulated 390x844 phone; a screenshot on failure as for `page`."""
    async with opened_page(browser, request, **PHONE) as opened:
        yield opened
