"""The dashboard in a real Chromium: log in, watch a simulated charger live, command it."""

from __future__ import annotations

import os
from typing import Any

import httpx
from playwright.async_api import Page, expect

from simulators import Charger
from tests.ocpi_partner import FakeEmsp, registered_emsp
from tests.support import MS, RunningCsms, new_identity

PASSWORD = "a long passphrase"
WAIT = 20_000 * MS * 1000  # Playwright counts milliseconds
SCREENSHOT = os.environ.get("CSMS_DASHBOARD_SCREENSHOT")  # set to refresh docs/dashboard.png


async def prepare(csms: RunningCsms, username: str, role: str, *tags: str) -> None:
    async with csms.api() as api:
        created = await api.post(
            "/accounts", json={"username": username, "password": PASSWORD, "role": role}
        )
        assert created.status_code == 201, created.text
        for tag in tags:
            await api.put(f"/id-tags/{tag}", json={"status": "Accepted"})


async def log_in(page: Page, csms: RunningCsms, username: str) -> str:
    root = csms.api_url.removesuffix("/api/v1")
    await page.goto(f"{root}/")
    await expect(page).to_have_url(f"{root}/login?next=/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{root}/")
    return root


async def active_transaction(csms: RunningCsms, identity: str) -> dict[str, Any]:
    async with csms.api() as api:
        found = await api.get("/transactions", params={"chargePointId": identity, "active": True})
    items: list[dict[str, Any]] = found.json()["items"]
    assert len(items) == 1, items
    return items[0]


def simulated(csms: RunningCsms, identity: str) -> Charger:
    return Charger(
        url=csms.ocpp_url,
        identity=identity,
        connectors=2,
        config={"MeterValueSampleInterval": 1, "AuthorizeRemoteTxRequests": False},
    )


async def test_operator_watches_a_charger_and_runs_a_session(csms: RunningCsms, page: Page) -> None:
    """Log in, see a charger come online live, start a session, watch the chart, stop it."""
    await prepare(csms, "ops", "operator", "UI-TAG")
    root = await log_in(page, csms, "ops")
    await expect(page.locator("#live-state.on")).to_be_visible(timeout=WAIT)
    identity = new_identity("SIM")
    async with simulated(csms, identity) as charger:
        await charger.boot()
        for connector in (0, 1, 2):
            await charger.status(connector, "Available")
        # No reload: the row arrives through the live stream.
        row = page.locator(f"#cp-{identity}")
        await expect(row).to_contain_text("online", timeout=WAIT)
        await expect(row).to_contain_text("2: Available", timeout=WAIT)
        await row.get_by_role("link", name=identity).click()
        await expect(page.locator("#live-state.on")).to_be_visible(timeout=WAIT)

        start = page.locator('form[data-command="RemoteStartTransaction"]')
        await start.locator('input[name="idTag"]').fill("UI-TAG")
        await start.get_by_role("button", name="Send").click()
        await expect(start.locator("output")).to_contain_text('"Accepted"', timeout=WAIT)
        await expect(page.locator("#active-session")).to_be_visible(timeout=WAIT)
        chart = page.locator("#chart")
        await page.wait_for_function(
            "Number(document.querySelector('#chart').dataset.points) >= 3", timeout=WAIT
        )
        before = int(await chart.get_attribute("data-points") or 0)
        await page.wait_for_function(
            f"Number(document.querySelector('#chart').dataset.points) > {before}", timeout=WAIT
        )
        await expect(chart.locator("polyline")).to_have_count(2)  # power and energy
        if SCREENSHOT:
            await page.evaluate("window.scrollTo(0, 0)")
            await page.screenshot(path=SCREENSHOT)

        transaction = await active_transaction(csms, identity)
        stop = page.locator('form[data-command="RemoteStopTransaction"]')
        await stop.locator('input[name="transactionId"]').fill(str(transaction["transactionId"]))
        await stop.get_by_role("button", name="Send").click()
        await expect(stop.locator("output")).to_contain_text('"Accepted"', timeout=WAIT)
        await expect(page.locator("#no-session")).to_be_visible(timeout=WAIT)

    await page.goto(f"{root}/sessions")
    await page.get_by_role("link", name=str(transaction["transactionId"]), exact=True).click()
    await expect(page.locator("h1")).to_contain_text("completed")
    energy = await page.locator("#session-energy").inner_text()
    assert float(energy.split()[0]) > 0, energy


async def test_a_viewer_has_no_command_buttons(csms: RunningCsms, page: Page) -> None:
    """A viewer sees the charger page but no command forms."""
    await prepare(csms, "vic", "viewer")
    root = await log_in(page, csms, "vic")
    identity = new_identity("SIM")
    async with simulated(csms, identity) as charger:
        await charger.boot()
        await page.goto(f"{root}/chargers/{identity}")
        await expect(page.locator("h1")).to_contain_text(identity)
        await expect(page.get_by_text("may look but not send commands")).to_be_visible()
        assert await page.locator("form.command").count() == 0


async def test_posts_without_the_csrf_token_are_refused(csms: RunningCsms, page: Page) -> None:
    """From the logged-in page, a POST without the form's token is 403 and sends nothing."""
    await prepare(csms, "ops", "operator")
    await log_in(page, csms, "ops")
    status = await page.evaluate(
        """async () => (await fetch('/chargers/NOPE/commands/Reset', {
               method: 'POST', body: new URLSearchParams({type: 'Soft'})})).status"""
    )
    logout = await page.evaluate("async () => (await fetch('/logout', {method: 'POST'})).status")
    assert (status, logout) == (403, 403)
    async with httpx.AsyncClient(base_url=csms.api_url) as client:
        del client  # the command never reached the API's command log:
    async with csms.api() as api:
        commands = await api.get("/charge-points/NOPE/commands")
    assert commands.json()["total"] == 0


async def test_a_viewer_finds_a_partner_and_its_endpoints(
    roaming: RunningCsms, emsp: FakeEmsp, page: Page
) -> None:
    """From the nav to the partners list to one partner: its handshake state, the
    endpoints csms learned from it, what it gets and its push backlog."""
    await prepare(roaming, "vic", "viewer")
    await registered_emsp(roaming, emsp)
    async with roaming.api() as api:
        later = {"countryCode": "DE", "partyId": "LAT", "roles": ["HUB"]}
        assert (await api.put("/partners/later", json=later)).status_code == 201
        known = (await api.get("/partners/emsp")).json()["endpoints"]
    assert known, "the handshake gave csms the eMSP's endpoints"
    root = await log_in(page, roaming, "vic")
    await page.locator("header nav").get_by_role("link", name="Partners").click()
    await expect(page).to_have_url(f"{root}/partners")
    await expect(page.locator("#partner-later")).to_contain_text("pending")
    row = page.locator("#partner-emsp")
    await expect(row).to_contain_text("registered")
    await expect(row).to_contain_text("NL*EMS")
    await row.get_by_role("link", name="emsp").click()
    await expect(page.locator("h1")).to_contain_text("emsp")
    await expect(page.locator("#partner-state")).to_contain_text("registered since")
    endpoints = page.locator("#endpoints tbody tr")
    await expect(endpoints).to_have_count(len(known))
    await expect(page.locator("#endpoints")).to_contain_text(f"{emsp.url}/ocpi/2.2.1/locations")
    await expect(page.locator("#pushes-waiting")).to_have_text("0")
    await expect(page.locator("#backlog")).to_contain_text("Nothing waiting.")
