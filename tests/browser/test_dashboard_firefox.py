"""The dashboard in a real Firefox (Debian's `firefox-esr`), driven over WebDriver BiDi.

Playwright's Firefox is a patched build that cannot be installed here, so these tests speak
the W3C protocol Firefox ships with (tests/browser/firefox_bidi.py). They mirror the key
Chromium tests: log in, a charger arriving live, a session from the command buttons with its
chart, a viewer without buttons, every main page within 1280x800 and a phone's width, and
the circuits' bars.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.test_circuits import FAST, booted
from tests.browser.conftest import ARTIFACTS
from tests.browser.firefox_bidi import firefox
from tests.browser.firefox_page import Tab
from tests.browser.test_dashboard_browser import PASSWORD, active_transaction, prepare, simulated
from tests.browser.test_dashboard_circuits_browser import add_circuits
from tests.browser.test_dashboard_phone import OVERFLOW
from tests.support import MS, RunningCsms, new_identity, running_csms, settings_for

pytestmark = pytest.mark.firefox

FIREFOX = os.environ.get("CSMS_TEST_FIREFOX", "/usr/bin/firefox-esr")
WAIT = 20_000 * MS  # seconds


@pytest.fixture
async def tab(request: pytest.FixtureRequest) -> AsyncIterator[Tab]:
    """A fresh Firefox at 1280x800; a screenshot in test-artifacts/ when the test fails, and
    the test fails on any uncaught script error the pages raised."""
    if shutil.which(FIREFOX) is None:
        pytest.fail(f"{FIREFOX} is missing: apt-get install -y firefox-esr (.ci/run does)")
    async with firefox(FIREFOX) as bidi:
        await bidi.command("session.subscribe", events=["log.entryAdded"])
        opened = await Tab.first(bidi, patience=WAIT)
        await opened.set_viewport(1280, 800)
        yield opened
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
            await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
            png = await opened.screenshot()
            await asyncio.to_thread((ARTIFACTS / f"{name}.png").write_bytes, png)
        thrown = [
            event["params"]["text"]
            for event in bidi.events
            if event["method"] == "log.entryAdded" and event["params"]["type"] == "javascript"
        ]
        assert thrown == [], thrown


@pytest.fixture
async def balanced(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms whose balancer allocates within 50 ms of a session (tests/api/test_circuits.py)."""
    settings = dataclasses.replace(settings_for(database_url), balancing=FAST)
    async with running_csms(settings) as running:
        yield running


def js(value: str) -> str:
    """A Python string as a JavaScript literal."""
    return json.dumps(value)


async def log_in(tab: Tab, csms: RunningCsms, username: str) -> str:
    """Through the login form, typing and clicking as a person would; the dashboard's root."""
    root = csms.api_url.removesuffix("/api/v1")
    await tab.goto(f"{root}/")
    assert await tab.evaluate("location.pathname + location.search") == "/login?next=/"
    await tab.type('input[name="username"]', username)
    await tab.type('input[name="password"]', PASSWORD)
    await tab.click('form.login button[type="submit"]')
    await arrived(tab, "/", "main")
    return root


async def arrived(tab: Tab, path: str, selector: str) -> None:
    """Wait until the tab shows `path` and `selector` is on that page."""
    await tab.wait_for(
        f"() => location.pathname === {js(path)} && document.querySelector({js(selector)})"
    )


async def text_of(tab: Tab, selector: str, wanted: str) -> str:
    """The text of `selector` once it contains `wanted`."""
    text: str = await tab.wait_for(
        f"""() => {{
          const element = document.querySelector({js(selector)});
          return element && element.textContent.includes({js(wanted)}) && element.textContent;
        }}"""
    )
    return text


async def test_a_charger_arrives_live_and_runs_a_session(csms: RunningCsms, tab: Tab) -> None:
    """Log in (a post without the CSRF token is refused), see a charger come online without
    a reload, start a session with the command button, watch the chart grow, stop it, and
    find the session with its energy."""
    await prepare(csms, "ops", "operator", "FF-TAG")
    root = await log_in(tab, csms, "ops")
    await tab.wait_for("() => document.querySelector('#live-state.on')")
    await tab.evaluate("window.samePage = true")  # a reload would drop it
    refused = await tab.evaluate(
        """fetch('/chargers/NOPE/commands/Reset', {method: 'POST',
             body: new URLSearchParams({type: 'Soft'})}).then((answer) => answer.status)"""
    )
    assert refused == 403, "a post without the form's CSRF token"
    identity = new_identity("FF")
    async with simulated(csms, identity) as charger:
        await charger.boot()
        for connector in (0, 1, 2):
            await charger.status(connector, "Available")
        row = await text_of(tab, f"#cp-{identity}", "2: Available")
        assert "online" in row, row
        assert await tab.evaluate("window.samePage === true"), "the row came by a reload"

        await tab.click(f'#cp-{identity} a[href="/chargers/{identity}"]')
        await arrived(tab, f"/chargers/{identity}", "#live-state.on")
        start = 'form[data-command="RemoteStartTransaction"]'
        await tab.type(f'{start} input[name="idTag"]', "FF-TAG")
        await tab.click(f"{start} button")
        await text_of(tab, f"{start} output", '"Accepted"')
        await tab.wait_for("() => document.querySelector('#active-session')")
        points = "Number(document.querySelector('#chart').dataset.points)"
        before = await tab.wait_for(f"() => {points} >= 3 && {points}")
        await tab.wait_for(f"() => {points} > {before}")  # meter values arrive live
        assert await tab.evaluate("document.querySelectorAll('#chart polyline').length") == 2

        transaction = await active_transaction(csms, identity)
        stop = 'form[data-command="RemoteStopTransaction"]'
        await tab.type(f'{stop} input[name="transactionId"]', str(transaction["transactionId"]))
        await tab.click(f"{stop} button")
        await text_of(tab, f"{stop} output", '"Accepted"')
        await tab.wait_for("() => document.querySelector('#no-session')")

    await tab.goto(f"{root}/sessions")
    await tab.click(f'a[href="/sessions/{transaction["transactionId"]}"]')
    await arrived(tab, f"/sessions/{transaction['transactionId']}", "#session-energy")
    await text_of(tab, "h1", "completed")
    energy = await tab.evaluate("document.querySelector('#session-energy').textContent")
    assert float(energy.split()[0]) > 0, energy


async def test_a_viewer_has_no_command_buttons(csms: RunningCsms, tab: Tab) -> None:
    """A viewer sees the charger page but no command forms."""
    await prepare(csms, "vic", "viewer")
    root = await log_in(tab, csms, "vic")
    identity = new_identity("FF")
    async with simulated(csms, identity) as charger:
        await charger.boot()
        await tab.goto(f"{root}/chargers/{identity}")
        await text_of(tab, "h1", identity)
        await text_of(tab, "#commands", "may look but not send commands")
        assert await tab.evaluate("document.querySelectorAll('form.command').length") == 0


# CSS pixels and device pixel ratio: the desktop, and a phone (as in Chromium's test).
SCREENS = ((1280, 800, 1.0), (390, 844, 3.0))


async def test_main_pages_fit_the_screen_and_a_phone(csms: RunningCsms, tab: Tab) -> None:
    """Fleet, a charger with a session, sessions, a session, circuits, partners and the login
    page are no wider than 1280x800 nor a 390-pixel phone: nothing sticks out beyond a box
    that scrolls sideways."""
    await prepare(csms, "ops", "operator", "FIT-TAG")
    root = await log_in(tab, csms, "ops")
    identity = new_identity("FF-CHARGER-WITH-A-LONG-IDENTITY")
    async with simulated(csms, identity) as charger:
        await charger.boot()
        for connector in (0, 1, 2):
            await charger.status(connector, "Available")
        async with csms.api() as api:
            started = await api.post(
                f"/charge-points/{identity}/commands/RemoteStartTransaction",
                json={"connectorId": 1, "idTag": "FIT-TAG"},
            )
            assert started.status_code == 200, started.text
        transaction = (await active_transaction(csms, identity))["transactionId"]
        pages = ("/", f"/chargers/{identity}", "/sessions", f"/sessions/{transaction}")
        for path in (*pages, "/circuits", "/partners", "/login"):
            await tab.goto(f"{root}{path}")
            assert await tab.wait_for("() => document.querySelector('main')")
            for screen in SCREENS:
                await fits(tab, path, *screen)


async def fits(tab: Tab, path: str, width: int, height: int, ratio: float) -> None:
    """At this screen size the page is no wider than the screen."""
    await tab.set_viewport(width, height, ratio)
    layout: dict[str, Any] = await tab.call(OVERFLOW)
    where = (path, width, layout)
    assert layout["width"] <= width, where
    assert layout["scrollWidth"] <= layout["width"], where
    assert layout["out"] == [], where
    assert await tab.evaluate("document.documentElement.scrollWidth <= innerWidth"), where


async def test_circuit_bars_follow_a_session(balanced: RunningCsms, tab: Tab) -> None:
    """A viewer on the circuits page sees the car park's L1 bar rise to the charger's 16 A
    of 32 A, half its track, when a session starts, without reloading."""
    await prepare(balanced, "vic", "viewer", "BAR-TAG")
    identity = new_identity("FF-BAR")
    charger = await booted(balanced, identity)
    try:
        await add_circuits(balanced, identity)
        await log_in(tab, balanced, "vic")
        await tab.click('header nav a[href="/circuits"]')
        await arrived(tab, "/circuits", "#live-state.on")
        l1 = 'document.querySelector(\'[role="meter"][aria-labelledby="circuit-park-L1"]\')'
        assert await tab.evaluate(f"{l1}.getAttribute('aria-valuenow')") == "0"
        await tab.evaluate("window.samePage = true")
        charger.plug_in(1, "BAR-TAG")
        await tab.wait_for(f"() => {l1}.getAttribute('aria-valuenow') === '16'")
        await text_of(tab, "#circuit-park .bar-value", "16 / 32 A")
        width = await tab.evaluate(
            "(() => { const bar = document.querySelector('#circuit-park .bar-allocated');"
            " return bar.getBoundingClientRect().width / bar.parentElement.clientWidth; })()"
        )
        assert width == pytest.approx(0.5, abs=0.02)
        assert await tab.evaluate("window.samePage === true"), "the bars came by a reload"
    finally:
        await charger.close()
