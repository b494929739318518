"""Webhook benchmark: deliveries per second to a local receiver, and OCPP message -> webhook
POST latency at a steady rate.

    python bench/webhooks.py [--backlog 20000] [--rate 2000] [--seconds 10] [--chargers 100]

csms runs as a subprocess (pinned to core 0 when `taskset` exists); the receiver (a small
HTTP/1.1 server) and the chargers run here. Two phases:

- drain: a subscription with `--backlog` events waiting in the outbox (100 chargers' worth);
  csms starts and delivers them; deliveries/s from the first POST to the last.
- rate: `--chargers` chargers send MeterValues at `--rate` messages/s in total for
  `--seconds`; each one's meter.values event is POSTed to the receiver; the time from
  sending the MeterValues to the POST's arrival gives p50/p99 (both stamped by this
  process's clock), and the achieved deliveries/s is what arrived from the first message
  sent to the last POST received. The machine's load average and how long csms waited for
  a CPU are printed beside them: on a busy machine that wait can be most of the p99.

Uses Mosquitto on 127.0.0.1:1883 when it listens (csms publishes the same events there),
else csms's embedded broker. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
from events import add_meter_events
from processes import free_port, start_csms
from websockets.asyncio.client import connect

from csms.store import webhooks
from csms.store.db import Database

SECRET = "whsec_" + "QmVuY2htYXJrIHNlY3JldCBvZiAzMiBieXRlcyEhISE="


def progress(line: str) -> None:
    """Figures as they come, on stderr: stdout carries the result (or make bench's table)."""
    print(line, file=sys.stderr, flush=True)


class Receiver:
    """A minimal keep-alive HTTP/1.1 server answering 200 to every POST, recording when
    each webhook arrived (by the receiver's clock)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []
        self.port = free_port()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                self.arrivals.append((time.perf_counter(), body))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def runqueue_wait(pid: int) -> float:
    """Seconds csms's threads have waited for a CPU while runnable (Linux schedstat; 0
    elsewhere). On a loaded machine this, not csms, can be most of the latency: it is
    reported beside the p99 so that runs on a busy machine read as such."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def load_average() -> float:
    """The machine's 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere).

    On a busy machine deliveries/s falls with the CPU csms gets; deliveries per CPU second
    does not, so the bench reports both."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stop_csms(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await process.wait()


async def prepare_backlog(url: str, receiver_url: str, count: int) -> None:
    """A subscription first (cursor 0), then `count` events behind it in the outbox."""
    database = Database(url)
    await database.migrate()
    writer = asyncio.create_task(database.writer.run())
    now = datetime.now(UTC)
    values = {
        "url": receiver_url,
        "event_types": ["meter.values"],
        "enabled": True,
        "status": "active",
        "secret": SECRET,
    }
    await database.writer.submit(
        partial(webhooks.put_subscription, subscription_id="bench", values=values, now=now)
    )
    await add_meter_events(database, count, chargers=100, now=now)
    database.writer.close()
    await writer
    await database.dispose()


async def drain(env: dict[str, str], receiver: Receiver, count: int) -> dict[str, float]:
    process = await start_csms(env)
    deadline = time.perf_counter() + 600
    cpu_start = cpu_end = own_start = own_end = 0.0
    try:
        while len(receiver.arrivals) < count and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            if receiver.arrivals and not cpu_start:
                cpu_start, own_start = cpu_seconds(process.pid), own_cpu()
        cpu_end, own_end = cpu_seconds(process.pid), own_cpu()
    finally:
        await stop_csms(process)
    got = len(receiver.arrivals)
    first, last = receiver.arrivals[0][0], receiver.arrivals[-1][0]
    rate = got / max(last - first, 1e-3)
    per_cpu = got / max(cpu_end - cpu_start, 1e-3)
    progress(
        f"webhook drain: {got} of {count} deliveries, {rate:,.0f} deliveries/s, "
        f"{per_cpu:,.0f} deliveries per csms CPU second"
    )
    window = max(last - first, 1e-3)
    return {
        "deliveries_per_s": rate,
        "delivered": got,
        "deliveries_per_cpu_s": per_cpu,
        "server_cpu_pct": 100 * (cpu_end - cpu_start) / window,
        "runner_cpu_pct": 100 * (own_end - own_start) / window,
    }


async def steady_rate(
    env: dict[str, str], receiver: Receiver, *, rate: float, seconds: float, chargers: int
) -> dict[str, float]:
    process = await start_csms(env)
    sent: dict[str, float] = {}
    answers: list[float] = []
    try:
        base = f"http://127.0.0.1:{env['CSMS_API__PORT']}/api/v1"
        async with httpx.AsyncClient(base_url=base) as api:
            answer = await api.put(
                "/webhooks/bench",
                json={
                    "url": f"http://127.0.0.1:{receiver.port}/hook",
                    "eventTypes": ["meter.values"],
                },
            )
            answer.raise_for_status()
        each = chargers / rate  # seconds between one charger's messages
        started, cpu_start, own_start = time.perf_counter(), cpu_seconds(process.pid), own_cpu()
        wait_start = runqueue_wait(process.pid)
        await asyncio.gather(
            *(
                _charger(
                    env,
                    f"RATE-{n:04d}",
                    each,
                    started + n * each / chargers,
                    seconds,
                    (sent, answers),
                )
                for n in range(chargers)
            )
        )
        sending = time.perf_counter() - started
        server_cpu = 100 * (cpu_seconds(process.pid) - cpu_start) / sending
        runner_cpu = 100 * (own_cpu() - own_start) / sending
        server_wait = 100 * (runqueue_wait(process.pid) - wait_start) / sending
        load = load_average()
        deadline = time.perf_counter() + 60
        while len(receiver.arrivals) < len(sent) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        # All of csms's work for these messages (answers, MQTT, webhooks, a backlog drained
        # after the sending), which a busy machine does not skew.
        cpu_per_message = 1000 * (cpu_seconds(process.pid) - cpu_start) / max(len(sent), 1)
    finally:
        await stop_csms(process)
    delays = latencies(sent, receiver.arrivals)
    p99 = percentile(delays, 0.99)
    # Over the time from the first message sent to the last POST received: deliveries that
    # arrive after the sending stopped (a backlog) lengthen the window, not the count.
    window = (receiver.arrivals[-1][0] if receiver.arrivals else started) - started
    achieved = len(receiver.arrivals) / max(window, sending)
    # What the chargers managed to send: on a loaded machine they fall behind `rate`, and
    # the latency is then that of a lower rate.
    offered = len(sent) / sending
    answers.sort()
    answer_p99 = percentile(answers, 0.99)
    progress(
        f"webhooks at {rate:,.0f} MeterValues/s asked for {seconds:.0f} s, {offered:,.0f}/s "
        f"sent: {len(receiver.arrivals)} of {len(sent)} delivered, {achieved:,.0f} deliveries/s; "
        f"OCPP MeterValues -> webhook POST p50={statistics.median(delays):.1f} ms "
        f"p99={p99:.1f} ms max={delays[-1]:.1f} ms; MeterValues answered p99="
        f"{answer_p99:.1f} ms; {cpu_per_message:.2f} ms of csms CPU per message; load "
        f"average {load:.1f}, csms waited for a CPU {server_wait:.0f} % of the time"
    )
    return {
        "deliveries_per_s": achieved,
        "p50_ms": statistics.median(delays),
        "p99_ms": p99,
        "sent": len(sent),
        "delivered": len(receiver.arrivals),
        "server_cpu_pct": server_cpu,
        "runner_cpu_pct": runner_cpu,
        "server_wait_pct": server_wait,
        "offered_per_s": offered,
        "answer_p99_ms": answer_p99,
        "cpu_ms_per_message": cpu_per_message,
        "load_average": load,
    }


def latencies(sent: dict[str, float], arrivals: list[tuple[float, bytes]]) -> list[float]:
    """Milliseconds from each MeterValues sent to the first POST of its event, sorted.

    Both ends are `time.perf_counter()` of this process (the chargers and the receiver run
    here), so no clock skew enters; a redelivery (at least once) counts only once."""
    seen: dict[str, float] = {}
    for arrived, body in arrivals:
        tag = orjson.loads(body)["data"]["sampledValues"][0]["value"]
        if tag in sent and tag not in seen:
            seen[tag] = (arrived - sent[tag]) * 1000
    return sorted(seen.values())


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values: the smallest value with at least
    `fraction` of them at or below it."""
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


async def _charger(
    env: dict[str, str],
    identity: str,
    interval: float,
    first_at: float,
    seconds: float,
    record: tuple[dict[str, float], list[float]],
) -> None:
    """One charger sending MeterValues every `interval` s; like a real one it waits for each
    answer before the next call (OCPP 1.6 J: one CALL in flight), so a csms that answers
    slowly lowers the rate it is offered, which the result reports."""
    sent, answers = record
    url = f"ws://127.0.0.1:{env['CSMS_OCPP__PORT']}/ocpp/{identity}"
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        boot = {"chargePointVendor": "bench", "chargePointModel": "b"}
        await ws.send(orjson.dumps([2, "b", "BootNotification", boot]).decode())
        await ws.recv()
        end = first_at + seconds
        due = first_at
        n = 0
        while due < end:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tag = f"{identity}-{n}"
            at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            payload: dict[str, Any] = {
                "connectorId": 1,
                "meterValue": [{"timestamp": at, "sampledValue": [{"value": tag}]}],
            }
            sent[tag] = time.perf_counter()
            await ws.send(orjson.dumps([2, str(n), "MeterValues", payload]).decode())
            await ws.recv()
            answers.append((time.perf_counter() - sent[tag]) * 1000)
            n += 1
            due += interval


def csms_env(database: str) -> dict[str, str]:
    """The environment of a csms under test: its own ports, database and topic prefix."""
    return {
        **os.environ,
        "CSMS_DATABASE__URL": database,
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(free_port()),
        "CSMS_API__PORT": str(free_port()),
        "CSMS_MQTT__TOPIC_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "CSMS_LOG__FORMAT": "json",
        "CSMS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
    }


async def run_phase(
    phase: str,
    *,
    scratch: Path,
    backlog: int = 20_000,
    rate: float = 2000,
    seconds: float = 10,
    chargers: int = 100,
    database: str | None = None,
) -> dict[str, float]:
    """One phase ("drain" or "rate") against a fresh receiver and a fresh csms; its figures,
    with csms's CPU and this process's (receiver and chargers) over the measured window."""
    receiver = Receiver()
    await receiver.start()
    url = database or f"sqlite+aiosqlite:///{scratch / phase}-{uuid.uuid4().hex[:6]}.db"
    env = csms_env(url)
    try:
        if phase == "drain":
            await prepare_backlog(url, f"http://127.0.0.1:{receiver.port}/hook", backlog)
            return await drain(env, receiver, backlog)
        return await steady_rate(env, receiver, rate=rate, seconds=seconds, chargers=chargers)
    finally:
        await receiver.stop()


def own_cpu() -> float:
    """User + system CPU time of this process (the receiver and the chargers)."""
    times = os.times()
    return times.user + times.system


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=20_000, help="events to drain")
    parser.add_argument("--rate", type=float, default=2000, help="MeterValues/s in the rate phase")
    parser.add_argument("--seconds", type=float, default=10, help="length of the rate phase")
    parser.add_argument("--chargers", type=int, default=100, help="chargers in the rate phase")
    parser.add_argument("--only", choices=("drain", "rate"), help="run one phase")
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for phase in ("drain", "rate"):
            if args.only and phase != args.only:
                continue
            results[phase] = await run_phase(
                phase,
                scratch=Path(scratch),
                backlog=args.backlog,
                rate=args.rate,
                seconds=args.seconds,
                chargers=args.chargers,
                database=args.database,
            )
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    asyncio.run(main())
