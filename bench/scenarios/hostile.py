"""H1 and H2 (issue 13): what hostile neighbours cost the healthy chargers.

H1, api_load: new chargers' BootNotification+Heartbeat latency, alone and while 50 API
clients poll `GET /api/v1/charge-points` once a second each (about 50 requests/s when the
API keeps up; the row "API answers" says what it did). The API runs on its own thread and
loop (csms/api/home.py). Target: Boot p99 < 100 ms under that load.

H2, poison_mix: healthy chargers' MeterValues throughput, alone and beside 4 chargers that
keep sending poison (NUL, integers beyond 32 bits, registers of 1e400, deep nesting,
oversized DataTransfer, repaired Stops), ~28 messages/s in all. Target: < 10 % lost.

Both use Python clients (websockets, httpx) in this process, on the generator core, so the
figures are compared within the same run: loaded against alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import httpx
import orjson
from processes import Server, csms_server, fresh_database
from report import Report, Row, progress
from websockets.asyncio.client import ClientConnection, connect

from scenarios.common import Options

LABEL_API = "H1"
LABEL_POISON = "H2"
API_CLIENTS = 50
# Seconds between one client's polls: 50 clients make the issue's ~50 requests/s.
POLL_INTERVAL = 1.0
BOOTS = 200
HEALTHY = 20
POISONERS = 4
POISON_RATE = 28.0  # messages per second, all poisoners together


async def _call(ws: ClientConnection, action: str, payload: dict[str, Any]) -> list[Any]:
    unique = uuid.uuid4().hex[:12]
    await ws.send(orjson.dumps([2, unique, action, payload]).decode())
    while True:
        answer = orjson.loads(await ws.recv())
        if answer[1] == unique:
            return list(answer)


def _url(server: Server, identity: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ocpp/{identity}"


async def _boot_latencies(server: Server, count: int) -> list[float]:
    """Connect, boot and heartbeat `count` new chargers one after the other: ms each."""
    found = []
    for n in range(count):
        async with connect(
            _url(server, f"H1-{uuid.uuid4().hex[:8]}-{n}"), subprotocols=["ocpp1.6"]
        ) as ws:  # type: ignore[list-item]
            began = time.perf_counter()
            await _call(ws, "BootNotification", {"chargePointVendor": "B", "chargePointModel": "H"})
            await _call(ws, "Heartbeat", {})
            found.append((time.perf_counter() - began) * 1000)
    return found


async def _poll_api(server: Server, stop: asyncio.Event, answered: list[int]) -> None:
    """One dashboard-like client: a page of charge points every POLL_INTERVAL seconds."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.api_port}/api/v1") as api:
        while not stop.is_set():
            began = time.perf_counter()
            response = await api.get("/charge-points", params={"limit": 50})
            answered.append(response.status_code)
            rest = POLL_INTERVAL - (time.perf_counter() - began)
            if rest > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rest)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def api_load(report: Report, opts: Options) -> None:
    progress("H1 charger Boot latency, alone and with 50 API clients polling")
    boots = 50 if opts.quick else BOOTS
    alone: list[list[float]] = []
    loaded: list[list[float]] = []
    rates: list[float] = []
    for n in range(opts.repeats):
        progress(f"H1 run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            async with csms_server(database, opts.scratch) as server:
                alone.append(await _boot_latencies(server, boots))
                stop, answered = asyncio.Event(), []
                pollers = [
                    asyncio.create_task(_poll_api(server, stop, answered))
                    for _ in range(API_CLIENTS)
                ]
                began = time.perf_counter()
                loaded.append(await _boot_latencies(server, boots))
                rates.append(len(answered) / (time.perf_counter() - began))
                stop.set()
                await asyncio.gather(*pollers, return_exceptions=True)
    for setting, runs in (("alone", alone), (f"{API_CLIENTS} API clients polling", loaded)):
        for metric, share in (("Boot+Heartbeat p50", 0.5), ("Boot+Heartbeat p99", 0.99)):
            report.add(
                Row(
                    LABEL_API,
                    "csms + sqlite",
                    setting,
                    metric,
                    "ms",
                    [_percentile(r, share) for r in runs],
                    higher_is_better=False,
                )
            )
    report.add(Row(LABEL_API, "csms + sqlite", "API clients", "API answers", "req/s", rates))


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


_POISON: list[tuple[str, dict[str, Any]]] = [
    ("Authorize", {"idTag": "T\u0000"}),
    ("StatusNotification", {"connectorId": 2**31, "errorCode": "NoError", "status": "Available"}),
    ("DataTransfer", {"vendorId": "v", "data": "x" * 70_000}),
    ("DataTransfer", {"vendorId": "v", "data": "x", "deep": _nested(40)}),
    (
        "StopTransaction",
        {"transactionId": 2**40, "meterStop": 1, "timestamp": "2024-01-01T00:00:00Z"},
    ),
    (
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": "1e400"}]}
            ],
        },
    ),
]


async def _poisoner(server: Server, stop: asyncio.Event, interval: float) -> None:
    async with connect(
        _url(server, f"H2-P-{uuid.uuid4().hex[:8]}"), subprotocols=["ocpp1.6"]
    ) as ws:  # type: ignore[list-item]
        await _call(ws, "BootNotification", {"chargePointVendor": "B", "chargePointModel": "P"})
        n = 0
        while not stop.is_set():
            action, payload = _POISON[n % len(_POISON)]
            n += 1
            await _call(ws, action, payload)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass


async def _healthy(server: Server, stop: asyncio.Event, counted: list[int]) -> None:
    async with connect(_url(server, f"H2-{uuid.uuid4().hex[:8]}"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await _call(ws, "BootNotification", {"chargePointVendor": "B", "chargePointModel": "H"})
        start = {
            "connectorId": 1,
            "idTag": "H2",
            "meterStart": 0,
            "timestamp": "2024-01-01T00:00:00Z",
        }
        tx = (await _call(ws, "StartTransaction", start))[2]["transactionId"]
        wh = 0
        while not stop.is_set():
            wh += 10
            sample = {"timestamp": "2024-01-01T00:00:01Z", "sampledValue": [{"value": str(wh)}]}
            await _call(
                ws, "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [sample]}
            )
            counted[0] += 1


async def _healthy_rate(server: Server, seconds: float, *, poison: bool) -> float:
    stop, counted = asyncio.Event(), [0]
    interval = POISONERS / POISON_RATE
    poisoners = (
        [asyncio.create_task(_poisoner(server, stop, interval)) for _ in range(POISONERS)]
        if poison
        else []
    )
    healthy = [asyncio.create_task(_healthy(server, stop, counted)) for _ in range(HEALTHY)]
    await asyncio.sleep(1.0)  # warm-up: every charger booted and charging
    before, began = counted[0], time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (counted[0] - before) / (time.perf_counter() - began)
    stop.set()
    await asyncio.gather(*poisoners, *healthy, return_exceptions=True)
    return rate


async def poison_mix(report: Report, opts: Options) -> None:
    progress("H2 healthy chargers' MeterValues throughput beside 4 poisoning chargers")
    kinds = ["sqlite"] if opts.quick else ["sqlite", "postgresql"]
    for kind in kinds:
        alone, mixed = [], []
        for n in range(opts.repeats):
            progress(f"H2 {kind} run {n + 1}/{opts.repeats}")
            with fresh_database(kind, opts.scratch) as database:
                async with csms_server(database, opts.scratch) as server:
                    alone.append(await _healthy_rate(server, opts.duration, poison=False))
                    mixed.append(await _healthy_rate(server, opts.duration, poison=True))
        setting = f"{HEALTHY} healthy chargers"
        report.add(
            Row(LABEL_POISON, f"csms + {kind}", setting, "MeterValues alone", "calls/s", alone)
        )
        report.add(
            Row(
                LABEL_POISON,
                f"csms + {kind}",
                setting,
                "MeterValues with poison mix",
                "calls/s",
                mixed,
            )
        )
        report.add(
            Row(
                LABEL_POISON,
                f"csms + {kind}",
                setting,
                "cost of the poison mix",
                "%",
                [100.0 * (1 - m / a) if a else 0.0 for a, m in zip(alone, mixed, strict=True)],
                higher_is_better=False,
            )
        )
