"""CPU per CALL in csms's protocol logic alone: no WebSocket, no event loop I/O, no generator.

    python bench/protocol_inprocess.py [--calls 2000] [--repeats 15] [--parts]

What P1's server (bench/servers/csms_protocol.py) does per CALL above its WebSocket layer:
`RpcSession.receive_text` (orjson, the boot gate, the poison prefilter, jsonschema-rs), the
bench handler (MeterValues' samples parsed as csms parses them, the Heartbeat's time),
`RpcSession.answer` (orjson, kept for a retry) and the CALL metrics, on MeterValues and
Heartbeat alternating as the C generator sends them. Prints CPU microseconds per call (this
process's CPU time over each repeat: the smallest and the median), steadier on a shared
machine than a server's calls/s. With --parts, the cost of each step on its own (best of
many short timings). Asserts nothing; bench/analysis.md says how the figures were used.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))

import csms_protocol as server

from csms.core.clock import format_utc
from csms.metrics import Metrics, monotonic
from csms.ocpp16 import poison
from csms.ocpp16.context import ChargerContext
from csms.ocpp16.convert import samples
from csms.ocpp16.rpc import Call, RpcSession, encode_call_result

# The frames of bench/cgen/loadgen.c.
METER_VALUES = (
    '[2,"7.%d","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":'
    '"2026-12-07T13:00:%02d.%03dZ","sampledValue":['
    '{"value":"%d","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register",'
    '"unit":"Wh"},'
    '{"value":"7200","context":"Sample.Periodic","measurand":"Power.Active.Import","unit":"W"},'
    '{"value":"31.4","context":"Sample.Periodic","measurand":"Current.Import","phase":"L1",'
    '"unit":"A"},'
    '{"value":"229.8","context":"Sample.Periodic","measurand":"Voltage","phase":"L1-N",'
    '"unit":"V"}]}]}]'
)
HEARTBEAT = '[2,"7.%d","Heartbeat",{}]'


def frames(calls: int) -> list[str]:
    return [
        METER_VALUES % (n, n % 60, n % 1000, 1000 + n) if n % 2 == 0 else HEARTBEAT % n
        for n in range(calls)
    ]


async def per_call(calls: int, repeats: int) -> list[float]:
    """CPU microseconds per call, one figure per repeat."""
    context = ChargerContext(charge_point_id="C7", services=server.SERVICES)
    rpc = RpcSession(validators=server.VALIDATORS, supported=server.HANDLERS.keys(), accepted=True)
    metrics = Metrics()
    handlers = server.HANDLERS
    texts = frames(calls)
    figures = []
    for _ in range(repeats):
        started_cpu = time.process_time()
        # As ChargerConnection._receive and _run_handler do, less the socket.
        for text in texts:
            call = rpc.receive_text(text)
            assert isinstance(call, Call), call
            started = monotonic()
            payload = await handlers[call.action](context, call.payload)
            rpc.answer(call, payload)
            metrics.ocpp_message(call.action, "ok", monotonic() - started)
        figures.append((time.process_time() - started_cpu) / calls * 1e6)
    return figures


def parts() -> None:
    """Each step on its own: the best of 300 timings of 100 runs (microseconds)."""
    meter_values = METER_VALUES % (1, 1, 123, 123456)
    heartbeat = HEARTBEAT % 2
    payload = orjson.loads(meter_values)[3]
    rpc = RpcSession(validators=server.VALIDATORS, supported=server.HANDLERS.keys(), accepted=True)
    validators = server.VALIDATORS
    metrics = Metrics()
    now = datetime.now(UTC)
    call = rpc.receive_text(heartbeat)
    assert isinstance(call, Call)
    steps: dict[str, Callable[[], object]] = {
        "orjson.loads MeterValues": lambda: orjson.loads(meter_values),
        "schema check MeterValues": lambda: validators.check_request("MeterValues", payload),
        "poison prefilter MeterValues": lambda: poison.may_hold_poison(meter_values),
        "nesting count MeterValues": lambda: poison.too_deep(meter_values, payload),
        "receive_text MeterValues": lambda: rpc.receive_text(meter_values),
        "receive_text Heartbeat": lambda: rpc.receive_text(heartbeat),
        "samples MeterValues": lambda: samples(payload["meterValue"], received=now),
        "utc_now + format_utc": lambda: format_utc(datetime.now(UTC)),
        "encode_call_result Heartbeat": lambda: encode_call_result("7.2", {"currentTime": ""}),
        "answer (encode + keep) Heartbeat": lambda: rpc.answer(call, {"currentTime": ""}),
        "metrics (2 clock reads + record)": lambda: metrics.ocpp_message(
            "Heartbeat", "ok", monotonic() - monotonic()
        ),
    }
    for name, step in steps.items():
        best = min(timeit.repeat(step, number=100, repeat=300)) / 100 * 1e6
        print(f"{best:8.2f} us  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--parts", action="store_true", help="also time each step on its own")
    args = parser.parse_args()
    figures = asyncio.run(per_call(args.calls, args.repeats))
    print(
        f"protocol logic: {min(figures):.2f} us/call smallest, "
        f"{statistics.median(figures):.2f} median ({args.repeats} x {args.calls} calls)"
    )
    if args.parts:
        parts()


if __name__ == "__main__":
    main()
