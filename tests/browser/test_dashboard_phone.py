"""The dashboard on a phone (Chromium's device emulation, 390x844): every main page fits
the screen's width, wide tables scroll inside their box, and the navigation stays reachable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.test_dashboard_browser import WAIT, log_in, prepare, simulated
from tests.ocpi_partner import FakeEmsp, registered_emsp
from tests.support import RunningCsms, new_identity

SCREENSHOTS = os.environ.get("CSMS_PHONE_SCREENSHOTS")  # a folder: each page's screenshot

# Reads the page's layout: what sticks out to the right of the screen, outside any box
# that scrolls sideways (a wide table in its .scroll box is fine: it scrolls there).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const style = getComputedStyle(p);
      if ((style.overflowX === 'auto' || style.overflowX === 'scroll') && p !== document.body
          && p !== document.documentElement) return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1 || scrolls(el)) continue;
    out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}` +
             `${el.className && typeof el.className === 'string' ? '.' + el.className : ''}` +
             ` right=${Math.round(box.right)}`);
  }
  return {width, scrollWidth: document.documentElement.scrollWidth, out: out.slice(0, 30)};
}"""


async def fits(page: Page, path: str) -> None:
    """The page at `path` is no wider than the screen, and every nav link is on it."""
    await page.goto(path)
    await expect(page.locator("main")).to_be_visible()
    layout: dict[str, Any] = await page.evaluate(OVERFLOW)
    assert layout["scrollWidth"] <= layout["width"], (path, layout)
    assert layout["out"] == [], (path, layout)
    if SCREENSHOTS:
        name = path.split("/", 3)[-1].replace("/", "-") or "fleet"
        await page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
    for link in await page.locator("header nav a").all():
        box = await link.bounding_box()
        assert box is not None, path
        assert box["x"] >= 0, (path, box)
        assert box["x"] + box["width"] <= layout["width"], (path, box)


async def test_main_pages_fit_a_phone(roaming: RunningCsms, emsp: FakeEmsp, phone: Page) -> None:
    """Fleet, a charger with a session and commands, sessions, a session, partners and a
    partner: none is wider than a 390-pixel screen; the nav links all fit on it."""
    await prepare(roaming, "ops", "operator", "PHONE-TAG")
    await registered_emsp(roaming, emsp)
    root = roaming.api_url.removesuffix("/api/v1")
    await fits(phone, f"{root}/login")
    await log_in(phone, roaming, "ops")
    identity = new_identity("PHONE-CHARGER-WITH-A-LONG-IDENTITY")
    async with simulated(roaming, identity) as charger:
        await charger.boot()
        for connector in (0, 1, 2):
            await charger.status(connector, "Available")
        async with roaming.api() as api:
            started = await api.post(
                f"/charge-points/{identity}/commands/RemoteStartTransaction",
                json={"connectorId": 1, "idTag": "PHONE-TAG"},
            )
            assert started.status_code == 200, started.text
        await fits(phone, f"{root}/")
        await expect(phone.locator(f"#cp-{identity}")).to_be_visible(timeout=WAIT)
        await phone.goto(f"{root}/chargers/{identity}")
        session = phone.locator("#active-session")
        await expect(session).to_be_visible(timeout=WAIT)
        transaction = await session.get_attribute("data-transaction")
        await fits(phone, f"{root}/chargers/{identity}")
        await fits(phone, f"{root}/sessions")
        await fits(phone, f"{root}/sessions/{transaction}")
        await fits(phone, f"{root}/partners")
        await fits(phone, f"{root}/partners/emsp")


async def test_the_nav_works_by_touch_on_a_phone(csms: RunningCsms, phone: Page) -> None:
    """On the phone each section is a tap away from any page."""
    await prepare(csms, "vic", "viewer")
    root = await log_in(phone, csms, "vic")
    sections = (
        ("Sessions", "/sessions"),
        ("Circuits", "/circuits"),
        ("Partners", "/partners"),
        ("Fleet", "/"),
    )
    for label, path in sections:
        await phone.locator("header nav").get_by_role("link", name=label).tap()
        await expect(phone).to_have_url(f"{root}{path}")
        await expect(phone.locator(f'header nav a[href="{path}"]')).to_have_attribute(
            "aria-current", "page"
        )
