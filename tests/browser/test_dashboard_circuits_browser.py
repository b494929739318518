"""The circuits section in a real Chromium: the bars move live as the balancer allocates,
they are meters a screen reader can read, and the page fits a phone."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from tests.api.test_circuits import FAST, booted
from tests.browser.test_dashboard_browser import WAIT, log_in, prepare
from tests.browser.test_dashboard_phone import fits
from tests.support import RunningCsms, new_identity, running_csms, settings_for

SCREENSHOT = os.environ.get(
    "CSMS_CIRCUITS_SCREENSHOT"
)  # set to refresh docs/dashboard-circuits.png


@pytest.fixture
async def balanced(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms whose balancer allocates within 50 ms of a session (tests/api/test_circuits.py)."""
    settings = dataclasses.replace(settings_for(database_url), balancing=FAST)
    async with running_csms(settings) as running:
        yield running


async def add_circuits(csms: RunningCsms, identity: str) -> None:
    """A site (63 A, 4 A base load on L1) feeding a car park with one charger (16 A)."""
    site = {"name": "Site", "phaseLimitsA": [63, 63, 63], "baseLoadA": [4, 0, 0]}
    park = {
        "name": "Car park",
        "parentId": "site",
        "phaseLimitsA": [32, 32, 32],
        "members": [{"chargePointId": identity, "maxCurrentA": 16}],
    }
    async with csms.api() as api:
        assert (await api.put("/circuits/site", json=site)).status_code == 201
        assert (await api.put("/circuits/park", json=park)).status_code == 201


async def test_bars_follow_a_session_live(balanced: RunningCsms, page: Page) -> None:
    """A viewer on the circuits page sees the car park's bars rise to the charger's 16 A
    when a session starts and fall back when it stops, without reloading."""
    await prepare(balanced, "vic", "viewer", "BAR-TAG")
    identity = new_identity("BAR")
    charger = await booted(balanced, identity)
    try:
        await add_circuits(balanced, identity)
        root = await log_in(page, balanced, "vic")
        await page.locator("header nav").get_by_role("link", name="Circuits").click()
        await expect(page).to_have_url(f"{root}/circuits")
        await expect(page.locator("#live-state.on")).to_be_visible(timeout=WAIT)
        park = page.locator("#circuit-park")
        l1 = park.get_by_role("meter", name="L1")
        await expect(l1).to_have_attribute("aria-valuenow", "0")
        await expect(l1).to_have_attribute("aria-valuemax", "32")
        await expect(park.locator(f'[data-member="{identity}/0"]')).to_contain_text(
            "nothing charging"
        )

        charger.plug_in(1, "BAR-TAG")
        await expect(l1).to_have_attribute("aria-valuenow", "16", timeout=WAIT)
        await expect(l1).to_have_attribute(
            "aria-valuetext", "L1: 16 A allocated, of 32 A", timeout=WAIT
        )
        await expect(park.locator(".bar-value").first).to_have_text("16 / 32 A")
        await expect(park.locator(f'[data-member="{identity}/0"]')).to_contain_text("#1: 16 A")
        await expect(park.locator(".last-allocation")).not_to_have_text("never")
        site_l1 = page.locator("#circuit-site").get_by_role("meter", name="L1")
        await expect(site_l1).to_have_attribute(
            "aria-valuetext", "L1: 16 A allocated, 4 A base load, of 63 A"
        )
        width = await park.locator(".bar-allocated").first.evaluate(
            "(el) => el.getBoundingClientRect().width / el.parentElement.clientWidth"
        )
        assert width == pytest.approx(0.5, abs=0.02)
        if SCREENSHOT:
            await page.screenshot(path=SCREENSHOT)

        charger.stop_session(1)
        await expect(l1).to_have_attribute("aria-valuenow", "0", timeout=WAIT)
        await expect(park.locator(f'[data-member="{identity}/0"]')).to_contain_text(
            "nothing charging"
        )
    finally:
        await charger.close()


async def test_circuits_fit_a_phone(balanced: RunningCsms, phone: Page) -> None:
    """With a session on a charger with a long identity, the circuits page is no wider than
    a 390-pixel screen, and each bar keeps its text value beside it."""
    await prepare(balanced, "vic", "viewer", "PHONE-TAG")
    identity = new_identity("PHONE-CIRCUIT-CHARGER-LONG-IDENTITY")
    charger = await booted(balanced, identity)
    try:
        await add_circuits(balanced, identity)
        root = await log_in(phone, balanced, "vic")
        await phone.goto(f"{root}/circuits")
        await expect(phone.locator("#live-state.on")).to_be_visible(timeout=WAIT)
        charger.plug_in(1, "PHONE-TAG")
        l1 = phone.locator("#circuit-park").get_by_role("meter", name="L1")
        await expect(l1).to_have_attribute("aria-valuenow", "16", timeout=WAIT)
        await fits(phone, f"{root}/circuits")
        value = phone.locator("#circuit-park .bar-value").first
        await expect(value).to_be_visible()
        await expect(value).to_have_text("16 / 32 A")
        bar = await l1.bounding_box()
        assert bar is not None
        assert bar["width"] > 150, bar  # still a bar, not squeezed by the text
        await phone.locator("header nav").get_by_role("link", name="Fleet").tap()
        await expect(phone).to_have_url(f"{root}/")
        await phone.locator("header nav").get_by_role("link", name="Circuits").tap()
        await expect(phone).to_have_url(f"{root}/circuits")
    finally:
        await charger.close()
