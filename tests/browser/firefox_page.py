"""One Firefox tab, driven over WebDriver BiDi (tests/browser/firefox_bidi.py): navigate, run
script, wait for a condition, click and type with real input events, take a screenshot.

Spec: https://w3c.github.io/webdriver-bidi/ (the `browsingContext`, `script` and `input`
modules).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from tests.browser.firefox_bidi import BiDi, BiDiError

# Resolves with the predicate's first truthy value, checked now and on every DOM change (a
# live update is a DOM change), or with null after `ms`: the caller asks again, in the new
# page if the old one was navigated away meanwhile.
_WAIT = """(ms) => new Promise((resolve) => {
  const predicate = %s;
  let observer = null, timer = null;
  const done = (value) => { observer.disconnect(); clearTimeout(timer); resolve(value); };
  const check = () => { try { const value = predicate(); if (value) done(value); } catch {} };
  observer = new MutationObserver(check);
  observer.observe(document, {subtree: true, childList: true, attributes: true,
                              characterData: true});
  timer = setTimeout(() => done(null), ms);
  check();
})"""


_TRY_MS = 1000  # how long one try of wait_for waits in the page for a DOM change


class ScriptError(Exception):
    """The page's script threw (spec `script.EvaluateResult`, type "exception")."""


class Tab:
    """A top-level browsing context (spec `browsingContext.BrowsingContext`)."""

    def __init__(self, bidi: BiDi, context: str, patience: float = 20.0) -> None:
        self.bidi = bidi
        self.context = context
        self.patience = patience  # seconds wait_for waits before it raises TimeoutError

    @classmethod
    async def first(cls, bidi: BiDi, patience: float) -> Tab:
        """The tab Firefox opened at start (spec `browsingContext.getTree`)."""
        tree = await bidi.command("browsingContext.getTree", maxDepth=0)
        context = tree["contexts"][0]["context"]
        navigated = ["browsingContext.navigationStarted"]  # wait_for restarts on it
        await bidi.command("session.subscribe", events=navigated, contexts=[context])
        return cls(bidi, context, patience)

    async def set_viewport(self, width: int, height: int, pixel_ratio: float = 1.0) -> None:
        """Spec `browsingContext.setViewport`: the layout viewport in CSS pixels."""
        await self.bidi.command(
            "browsingContext.setViewport",
            context=self.context,
            viewport={"width": width, "height": height},
            devicePixelRatio=pixel_ratio,
        )

    async def goto(self, url: str) -> None:
        """Spec `browsingContext.navigate`, answered once the page's load event fired."""
        await self.bidi.command(
            "browsingContext.navigate", context=self.context, url=url, wait="complete"
        )

    async def call(self, function: str, *args: str | int | float) -> Any:
        """Spec `script.callFunction` with primitive arguments; the result as Python."""
        result = await self.bidi.command(
            "script.callFunction",
            functionDeclaration=function,
            arguments=[{"type": _KINDS[type(arg)], "value": arg} for arg in args],
            target={"context": self.context},
            awaitPromise=True,
        )
        if result["type"] == "exception":
            raise ScriptError(result["exceptionDetails"]["text"])
        return plain(result["result"])

    async def evaluate(self, expression: str) -> Any:
        return await self.call(f"() => ({expression})")

    async def wait_for(self, predicate: str) -> Any:
        """The first truthy value of the JS function `predicate`; TimeoutError after
        `patience` seconds. Firefox never answers a script whose page went away, so each try
        ends at the next navigation (or after two of its page-side seconds, for one that
        started just before), and the next try runs in the new page."""
        navigated = "browsingContext.navigationStarted"
        async with asyncio.timeout(self.patience), self.bidi.listening(navigated) as navigations:
            while (value := await self._try(predicate, navigations)) is None:
                pass
            return value

    async def _try(self, predicate: str, navigations: asyncio.Queue[dict[str, Any]]) -> Any:
        """The predicate's value, or None when it stayed false, the page left, or no answer."""
        attempt = asyncio.create_task(self.call(_WAIT % predicate, _TRY_MS))
        moved = asyncio.create_task(navigations.get())
        try:
            await asyncio.wait(
                (attempt, moved), timeout=2 * _TRY_MS / 1000, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            attempt.cancel()
            moved.cancel()
            await asyncio.gather(attempt, moved, return_exceptions=True)
        if attempt.cancelled():
            return None
        error = attempt.exception()
        if isinstance(error, BiDiError) and error.error in ("no such frame", "unknown error"):
            return None  # the page went away under the script
        return attempt.result()

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (spec `input.performActions`,
        an element origin), after scrolling it into view."""
        found = await self.bidi.command(
            "script.callFunction",
            functionDeclaration="""(selector) => {
              const element = document.querySelector(selector);
              element.scrollIntoView({block: "center"});
              return element;
            }""",
            arguments=[{"type": "string", "value": selector}],
            target={"context": self.context},
            awaitPromise=False,
        )
        if found["type"] == "exception":
            raise ScriptError(f"{selector}: {found['exceptionDetails']['text']}")
        element = {"sharedId": found["result"]["sharedId"]}
        steps = [
            {
                "type": "pointerMove",
                "x": 0,
                "y": 0,
                "origin": {"type": "element", "element": element},
            },
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]
        await self._perform({"type": "pointer", "id": "mouse", "actions": steps})

    async def type(self, selector: str, text: str) -> None:
        """Click into the field and type `text` key by key (spec `input.performActions`)."""
        await self.click(selector)
        keys = [{"type": kind, "value": key} for key in text for kind in ("keyDown", "keyUp")]
        await self._perform({"type": "key", "id": "keyboard", "actions": keys})

    async def _perform(self, source: dict[str, Any]) -> None:
        await self.bidi.command("input.performActions", context=self.context, actions=[source])
        await self.bidi.command("input.releaseActions", context=self.context)

    async def screenshot(self) -> bytes:
        """The whole page as PNG (spec `browsingContext.captureScreenshot`)."""
        shot = await self.bidi.command(
            "browsingContext.captureScreenshot", context=self.context, origin="document"
        )
        return base64.b64decode(shot["data"])


_KINDS = {str: "string", int: "number", float: "number"}


def plain(value: dict[str, Any]) -> Any:
    """A spec `script.RemoteValue` as Python; a node or other handle stays as it came."""
    kind = value["type"]
    if kind in ("undefined", "null"):
        return None
    if kind == "number" and isinstance(value["value"], str):  # "NaN", "-0", "Infinity"
        return float(value["value"])
    if kind in ("string", "number", "boolean"):
        return value["value"]
    if kind == "array":
        return [plain(item) for item in value.get("value", [])]
    if kind == "object":
        return {
            key if isinstance(key, str) else plain(key): plain(item)
            for key, item in value.get("value", [])
        }
    return value
