"""Helpers of the bench tests: an EV, plugging it in, and a checked answer."""

from __future__ import annotations

from typing import Any

from simulators.ocppj import validate_response
from simulators.station import EvSpec
from simulators.testing import Bench

EV = EvSpec(capacity_wh=60_000.0, max_power_w=11_000.0, soc_start=0.2, soc_target=1.0)


def plug(bench: Bench, connector: int = 1, tag: str = "TAG1", **kwargs: Any) -> None:
    """Plug an EV in and let the session start."""
    kwargs.setdefault("ev", EV)
    assert bench.station.plug_in(connector, tag, bench.now, **kwargs)
    bench.pump()


def answer_ok(bench: Bench, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a CALL, check the answer is a schema-valid CALLRESULT and return its payload."""
    frame = bench.send(action, payload)
    assert frame[0] == 3, frame
    assert validate_response(action, frame[2]) is None, frame
    result: dict[str, Any] = frame[2]
    return result
