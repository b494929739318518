"""A Mosquitto of a test's own, on a free port, that queues a slow subscriber's messages
without limit.

The shared broker (127.0.0.1:1883) keeps Mosquitto's defaults: 20 QoS 1 messages in flight
to a subscriber and 1,000 queued behind them, and it drops what comes beyond ("Outgoing
messages are being dropped for client ..." in its log; mosquitto.conf(5),
`max_queued_messages`). A survivor publishing a killed node's backlog can outrun the test's
own subscriber by more than that, and the test would then count as lost what csms had
delivered. docs/deployment.md ("Exactly once") asks the same of any consumer that must see
every event: a queue deep enough on the broker.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support import MS, free_port


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    return found


@asynccontextmanager
async def roomy_mosquitto() -> AsyncIterator[str]:
    """Yield the mqtt:// URL of a fresh Mosquitto that drops nothing it queues."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mosquitto-") as folder:
        config = Path(folder) / "mosquitto.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # 0: no limit (mosquitto.conf(5)).
            "max_queued_messages 0\n"
            "log_dest stderr\n"
        )
        process = await asyncio.create_subprocess_exec(
            _mosquitto(),
            "-c",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await _listening(port, process)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            if process.returncode is None:
                process.terminate()
            await process.wait()


async def _listening(port: int, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(10_000 * MS):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"mosquitto exited with {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(20 * MS)
                continue
            writer.close()
            await writer.wait_closed()
            return
