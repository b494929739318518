"""The circuits page in a real Chromium follows the operator's edits live: a circuit put or
deleted through the API appears and goes without a reload (`circuit.updated`)."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.test_dashboard_browser import WAIT, log_in, prepare
from tests.support import RunningCsms


async def test_circuit_edits_show_without_a_reload(csms: RunningCsms, page: Page) -> None:
    """No circuit has members, so no allocation follows: only `circuit.updated` can
    refresh the section."""
    await prepare(csms, "vic", "viewer")
    root = await log_in(page, csms, "vic")
    await page.goto(f"{root}/circuits")
    await expect(page.locator("#live-state.on")).to_be_visible(timeout=WAIT)
    await expect(page.locator("#no-circuits")).to_be_visible()
    annex = {"name": "Annex", "phaseLimitsA": [25, 25, 25]}
    async with csms.api() as api:
        assert (await api.put("/circuits/annex", json=annex)).status_code == 201
        section = page.locator("#circuit-annex")
        await expect(section).to_contain_text("Annex", timeout=WAIT)
        await expect(section.get_by_role("meter", name="L1")).to_have_attribute(
            "aria-valuemax", "25"
        )
        annex["phaseLimitsA"] = [40, 40, 40]
        assert (await api.put("/circuits/annex", json=annex)).status_code == 200
        await expect(section.get_by_role("meter", name="L1")).to_have_attribute(
            "aria-valuemax", "40", timeout=WAIT
        )
        assert (await api.delete("/circuits/annex")).status_code == 204
    await expect(page.locator("#no-circuits")).to_be_visible(timeout=WAIT)
