"""Webhook safety: SSRF refusals (literals, names, rebinds, redirects) and secret rotation.

No test here sends a packet beyond 127.0.0.1: names that resolve elsewhere come from a
fixed table given to csms at its resolver seam, and are refused before any connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from csms.core.webhooks import parse_target
from csms.errors import WebhookTargetRefused
from csms.webhooks.http import Sender, TargetGuard, resolve_host
from tests.pki import make_ca, make_server_cert
from tests.strict_charger import strict_charger
from tests.support import MS, RunningCsms, running_csms
from tests.webhooks.helpers import attempts_logged, caught_up, subscribe, webhook_settings
from tests.webhooks.receiver import Delivery, Receiver, serving

PUBLIC = "93.184.215.14"  # never connected to: each test refuses it or resolves past it


class Table:
    """A resolver seam: fixed answers per name, a list of answers for a name that changes."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self._answers = {name: iter(turns) for name, turns in answers.items()}
        self._last: dict[str, list[str]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        if host == "localhost":  # the system resolver: /etc/hosts, no DNS server
            return await resolve_host(host, port)
        turns = self._answers.get(host)
        if turns is None:
            return []
        self._last[host] = next(turns, self._last.get(host, []))
        return self._last[host]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as running:
        yield running


@pytest.fixture
async def guarded(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms that refuses non-public targets, with a fixed table for test names."""
    settings = webhook_settings(database_url, allow_private_targets=False)
    resolve = Table(
        {
            "internal.test": [["10.1.2.3"]],
            "mixed.test": [[PUBLIC, "192.168.7.7"]],
            "rebind.test": [[PUBLIC], ["10.9.9.9"]],
        }
    )
    async with running_csms(settings, resolve=resolve) as running:
        yield running


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("10.0.0.1", "10.0.0.1 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("[::ffff:192.168.0.1]", "192.168.0.1 is a private address"),
        ("localhost", "localhost resolves to"),
        ("internal.test", "internal.test resolves to 10.1.2.3: 10.1.2.3 is a private address"),
        ("mixed.test", "mixed.test resolves to 192.168.7.7"),
        ("nowhere.test", "nowhere.test does not resolve"),
    ],
)
async def test_private_targets_are_refused_with_a_422_that_names_the_setting(
    guarded: RunningCsms, receiver: Receiver, host: str, problem: str
) -> None:
    """Loopback, private and link-local targets, as literals or by name after DNS, get a
    422 naming webhooks.allow_private_targets; nothing is stored."""
    async with guarded.api() as api:
        answer = await api.put(
            "/webhooks/ssrf", json={"url": f"http://{host}:8080/hook", "eventTypes": ["*"]}
        )
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert problem in detail
        if "resolve" not in problem or "resolves to" in problem:
            assert "webhooks.allow_private_targets" in detail
        assert (await api.get("/webhooks/ssrf")).status_code == 404
    assert receiver.deliveries == []


async def test_a_name_that_rebinds_to_a_private_address_is_refused_at_connect_time(
    guarded: RunningCsms,
) -> None:
    """A name public at subscription time but private when a delivery resolves it is
    refused then: the attempt is logged as refused and no connection is made."""
    async with guarded.api() as api:
        await subscribe(api, "rebind", "http://rebind.test/hook", event_types=["chargepoint.*"])
        async with strict_charger(f"{guarded.ocpp_url}/CP-RB"):
            pass
        (attempt,) = await attempts_logged(guarded, "rebind", 1)
    assert attempt.status_code is None
    assert attempt.error.startswith("refused: rebind.test resolves to 10.9.9.9")


async def test_the_guard_checks_the_address_a_delivery_resolves_not_an_earlier_one() -> None:
    """The API's check does not fill the cache: a delivery resolves again and is held to
    what it finds (the DNS rebind defence)."""
    guard = TargetGuard(
        allow_private=False, resolve=Table({"rebind.test": [[PUBLIC], ["10.0.0.8"]]})
    )
    await guard.check("https://rebind.test/hook")
    with pytest.raises(WebhookTargetRefused, match=r"10\.0\.0\.8"):
        await guard.address(parse_target("https://rebind.test/hook"))


async def test_a_delivery_connects_to_the_checked_address_naming_the_host(
    receiver: Receiver,
) -> None:
    """The POST goes to the address the guard resolved (no other lookup), with the name in
    the Host header, and reads at most the configured bytes of the answer."""
    port = receiver.url.rsplit(":", 1)[1]
    guard = TargetGuard(allow_private=True, resolve=Table({"hooks.test": [["127.0.0.1"]]}))
    sender = Sender(
        guard=guard,
        connect_timeout=2_000 * MS,
        read_timeout=2_000 * MS,
        body_bytes=6,
    )
    try:
        answer = await sender.post(f"http://hooks.test:{port}/named", headers={}, body=b"{}")
    finally:
        await sender.close()
    (delivery,) = receiver.at("/named")
    assert delivery.headers["host"] == f"hooks.test:{port}"
    assert (answer.status_code, answer.body) == (200, "answer")


@pytest.mark.parametrize(("certified", "error"), [("hooks.test", None), ("other.test", "SSL")])
async def test_https_is_verified_against_the_name_not_the_address(
    tmp_path: Path, certified: str, error: str | None
) -> None:
    """Over https the connection goes to the checked address while SNI and the certificate
    check use the URL's name: a certificate for another name fails the attempt."""
    ca = make_ca(tmp_path)
    server = make_server_cert(ca, tmp_path, hosts=[certified])
    tls = {"ssl_certfile": str(server.cert_file), "ssl_keyfile": str(server.key_file)}
    async with serving(None, **tls) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        guard = TargetGuard(allow_private=True, resolve=Table({"hooks.test": [["127.0.0.1"]]}))
        sender = Sender(
            guard=guard,
            connect_timeout=2_000 * MS,
            read_timeout=2_000 * MS,
            body_bytes=100,
            tls=ssl.create_default_context(cafile=str(ca.cert_file)),
        )
        try:
            answer = await sender.post(f"https://hooks.test:{port}/tls", headers={}, body=b"{}")
        finally:
            await sender.close()
    if error is None:
        assert (answer.status_code, answer.body) == (200, "answer 200")
        assert receiver.at("/tls")[0].headers["host"] == f"hooks.test:{port}"
    else:
        assert answer.status_code is None
        assert answer.error is not None
        assert error in answer.error
        assert receiver.deliveries == []


async def test_redirects_are_not_followed(database_url: str, receiver: Receiver) -> None:
    """A 307 to another (private) address is a failed attempt, not a request there; the
    retry to the subscribed URL delivers."""
    async with serving() as elsewhere, running_csms(webhook_settings(database_url)) as csms:
        receiver.answer("/moved", f"redirect:{elsewhere.url}/stolen")
        async with csms.api() as api:
            await subscribe(
                api, "moved", f"{receiver.url}/moved", event_types=["chargepoint.connected"]
            )
            async with strict_charger(f"{csms.ocpp_url}/CP-MV"):
                pass
            await receiver.until(2, path="/moved")
            await caught_up(csms, "moved")
            log = (await api.get("/webhooks/moved/deliveries")).json()["items"]
    assert elsewhere.deliveries == []
    assert [item["statusCode"] for item in reversed(log)] == [307, 200]


async def test_a_rotation_signs_with_both_secrets_during_the_overlap_then_the_new_one(
    database_url: str, receiver: Receiver
) -> None:
    """After rotate-secret both signatures are sent and each secret verifies; once the
    overlap is over (here: a rotation without one) only the newest secret verifies."""
    async with running_csms(webhook_settings(database_url)) as csms, csms.api() as api:
        first = await subscribe(
            api, "rot", f"{receiver.url}/rot", event_types=["chargepoint.booted"]
        )
        await _boot(csms, receiver, count=1)
        (before,) = receiver.at("/rot")
        assert len(before.signatures) == 1
        before.verified(first)

        rotated = await api.post("/webhooks/rot/rotate-secret", json={})
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()["secret"]
        assert second.startswith("whsec_")
        assert second != first
        assert (await api.get("/webhooks/rot")).json()["previousSecretValidUntil"] is not None
        during = await _boot(csms, receiver, count=2)
        assert len(during.signatures) == 2
        during.verified(first)
        during.verified(second)

        ended = await api.post("/webhooks/rot/rotate-secret", json={"overlapSeconds": 0})
        third = ended.json()["secret"]
        after = await _boot(csms, receiver, count=3)
        assert len(after.signatures) == 1
        after.verified(third)
        for old in (first, second):
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(after.body, after.headers)
        shown = (await api.get("/webhooks/rot")).json()
        assert "secret" not in shown
        assert shown["previousSecretValidUntil"] is None


async def _boot(csms: RunningCsms, receiver: Receiver, *, count: int) -> Delivery:
    async with strict_charger(f"{csms.ocpp_url}/CP-ROT"):
        pass
    return (await receiver.until(count, path="/rot"))[-1]


async def test_a_kept_alive_connection_the_receiver_closed_is_replaced() -> None:
    """A receiver that drops an idle keep-alive connection gets the next POST on a new
    one; answers of every body framing are read within the size bound."""
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\n\r\nsomething broke",
    ]
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(answers[connections - 1])
        await writer.drain()
        writer.close()  # after every answer: the kept-alive connection is gone

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    guard = TargetGuard(allow_private=True)
    sender = Sender(guard=guard, connect_timeout=2_000 * MS, read_timeout=2_000 * MS, body_bytes=9)
    try:
        got = [
            await sender.post(f"http://127.0.0.1:{port}/k", headers={}, body=b"{}") for _ in answers
        ]
    finally:
        await sender.close()
        server.close()
    assert [(a.status_code, a.body, a.error) for a in got] == [
        (200, "ok", None),
        (202, "abc", None),
        (500, "something", None),
    ]
    assert connections == 3


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "BadResponse: not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", "BadResponse: bad content-length"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", "IncompleteReadError"),
    ],
)
async def test_an_answer_that_is_not_http_is_a_failed_attempt(answer: bytes, error: str) -> None:
    """Garbage, a bad length or chunk, a cut-off body: the attempt fails with the reason
    (and is retried); nothing raises into the delivery worker."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = Sender(
        guard=TargetGuard(allow_private=True),
        connect_timeout=2_000 * MS,
        read_timeout=2_000 * MS,
        body_bytes=100,
    )
    try:
        got = await sender.post(f"http://127.0.0.1:{port}/bad", headers={}, body=b"")
    finally:
        await sender.close()
        server.close()
    assert got.status_code is None
    assert got.error is not None
    assert error in got.error
