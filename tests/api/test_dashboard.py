"""The dashboard over HTTP: login, cookies, CSRF, rate limit, roles, the live stream."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from csms.api.dashboard import command_payload
from tests.support import MS, RunningCsms, new_identity, running_csms, settings_for

PASSWORD = "a long passphrase"


def root_of(csms: RunningCsms) -> str:
    return csms.api_url.removesuffix("/api/v1")


async def add_account(csms: RunningCsms, username: str, role: str) -> None:
    async with csms.api() as api:
        created = await api.post(
            "/accounts", json={"username": username, "password": PASSWORD, "role": role}
        )
    assert created.status_code == 201, created.text


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


@asynccontextmanager
async def logged_in(csms: RunningCsms, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client with a dashboard session."""
    async with httpx.AsyncClient(base_url=root_of(csms), timeout=10_000 * MS) as client:
        form = await client.get("/login")
        answer = await client.post(
            "/login",
            data={"csrf": csrf_in(form.text), "username": username, "password": PASSWORD},
        )
        assert answer.status_code == 303, answer.text
        yield client


async def test_pages_need_a_login(csms: RunningCsms) -> None:
    """With api.token set, / redirects to the login form, keeping where the visitor went."""
    async with httpx.AsyncClient(base_url=root_of(csms)) as client:
        answer = await client.get("/sessions?offset=0")
        stream = await client.get("/live")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/sessions%3Foffset%3D0"
    assert stream.status_code == 401


async def test_login_sets_a_strict_http_only_cookie(csms: RunningCsms) -> None:
    """A login answers 303 with an HttpOnly, SameSite=Strict session cookie; pages open."""
    await add_account(csms, "ada", "viewer")
    async with logged_in(csms, "ada") as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert "ada" in page.text
    cookie = next(c for c in client.cookies.jar if c.name == "csms_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") in ("Strict", "strict")
    assert not cookie.secure  # plain HTTP without dashboard.cookie_secure


@pytest.fixture
async def secure_csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms behind an imagined TLS proxy (cookie_secure) that allows 2 failed logins."""
    settings = settings_for(database_url)
    dashboard = dataclasses.replace(settings.dashboard, cookie_secure=True, max_failed_logins=2)
    async with running_csms(dataclasses.replace(settings, dashboard=dashboard)) as running:
        yield running


async def test_cookies_are_secure_when_configured(secure_csms: RunningCsms) -> None:
    """dashboard.cookie_secure marks the session and CSRF cookies Secure."""
    await add_account(secure_csms, "ada", "admin")
    async with httpx.AsyncClient(base_url=root_of(secure_csms)) as client:
        form = await client.get("/login")
        # A Secure cookie does not come back over plain HTTP: send it as the proxy would.
        client.cookies.set("csms_csrf", csrf_in(form.text))
        answer = await client.post(
            "/login",
            data={"csrf": csrf_in(form.text), "username": "ada", "password": PASSWORD},
        )
    assert "secure" in form.headers["set-cookie"].lower()
    assert answer.status_code == 303
    assert "secure" in answer.headers["set-cookie"].lower()


async def test_failed_logins_are_refused_then_throttled(
    secure_csms: RunningCsms, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong passwords get 401 and are logged; past the limit even the right one gets 429."""
    await add_account(secure_csms, "ada", "admin")
    async with httpx.AsyncClient(base_url=root_of(secure_csms)) as client:
        form = await client.get("/login")
        token = csrf_in(form.text)
        client.cookies.set("csms_csrf", token)
        answers = []
        for password in ("wrong one!!", "wrong two!!", PASSWORD):
            answers.append(
                await client.post(
                    "/login",
                    data={"csrf": token, "username": "ada", "password": password},
                )
            )
    assert [answer.status_code for answer in answers] == [401, 401, 429]
    assert "wrong username or password" in answers[0].text
    assert int(answers[2].headers["retry-after"]) > 0
    logged = capsys.readouterr().out
    assert "login_failed" in logged
    assert "login_throttled" in logged
    assert "wrong one" not in logged


async def test_login_without_its_csrf_token_is_refused(csms: RunningCsms) -> None:
    """A login POST without the form's CSRF token (a cross-site post) is 403."""
    await add_account(csms, "ada", "admin")
    async with httpx.AsyncClient(base_url=root_of(csms)) as client:
        answer = await client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert answer.status_code == 403


async def test_state_changing_posts_need_the_session_csrf_token(csms: RunningCsms) -> None:
    """Commands and log out without (or with a wrong) CSRF token are 403 and change nothing."""
    await add_account(csms, "ops", "operator")
    async with logged_in(csms, "ops") as client:
        page = await client.get("/")
        token = csrf_in(page.text)
        no_token = await client.post("/chargers/X/commands/Reset", data={"type": "Soft"})
        wrong = await client.post(
            "/chargers/X/commands/Reset", data={"type": "Soft", "csrf": token[:-2] + "xx"}
        )
        logout = await client.post("/logout", data={})
        still_in = await client.get("/")
        with_token = await client.post(
            "/chargers/X/commands/Reset",
            data={"type": "Soft", "csrf": token},
            headers={"Accept": "application/json"},
        )
    assert no_token.status_code == wrong.status_code == logout.status_code == 403
    assert still_in.status_code == 200
    assert with_token.status_code == 404  # through to the command: no such charger
    assert with_token.json()["detail"] == "charge point X not found"


async def test_a_viewer_gets_no_command_buttons_and_cannot_post(csms: RunningCsms) -> None:
    """A viewer sees the charger page without forms; a command posted by hand is 403."""
    await add_account(csms, "vic", "viewer")
    identity = new_identity()
    async with csms.charger(identity), logged_in(csms, "vic") as client:
        page = await client.get(f"/chargers/{identity}")
        posted = await client.post(
            f"/chargers/{identity}/commands/Reset",
            data={"type": "Soft", "csrf": csrf_in(page.text)},
        )
    assert page.status_code == 200
    assert 'class="command"' not in page.text
    assert "may look but not send commands" in page.text
    assert posted.status_code == 403
    assert posted.json() == {"detail": "a viewer may not send commands"}


async def test_logout_ends_the_session(csms: RunningCsms) -> None:
    """After log out the old cookie no longer opens pages."""
    await add_account(csms, "ada", "admin")
    async with logged_in(csms, "ada") as client:
        page = await client.get("/")
        cookie = client.cookies["csms_session"]
        out = await client.post("/logout", data={"csrf": csrf_in(page.text)})
    async with httpx.AsyncClient(base_url=root_of(csms), cookies={"csms_session": cookie}) as old:
        again = await old.get("/")
    assert out.status_code == 303
    assert again.status_code == 303


async def test_live_stream_pushes_published_events(csms: RunningCsms) -> None:
    """/live sends a charger's events as server-sent events once the broker has them."""
    await add_account(csms, "ada", "viewer")
    identity = new_identity()
    async with logged_in(csms, "ada") as client:
        async with client.stream("GET", f"/live?charger={identity}") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": live"
            async with csms.charger(identity):
                async with asyncio.timeout(10_000 * MS):
                    async for line in lines:
                        if line == "event: chargepoint.booted":
                            data = await anext(lines)
                            break
    assert data.startswith("data: {")
    assert f'"source":"/charge-points/{identity}"' in data


async def test_open_dashboard_needs_no_login(database_url: str) -> None:
    """With an empty api.token on loopback, / opens without a login and says so."""
    settings = settings_for(database_url)
    api = dataclasses.replace(settings.api, token="")
    async with (
        running_csms(dataclasses.replace(settings, api=api)) as csms,
        httpx.AsyncClient(base_url=root_of(csms)) as client,
    ):
        page = await client.get("/")
    assert page.status_code == 200
    assert "open (no login)" in page.text


@pytest.mark.parametrize(
    ("action", "form", "payload"),
    [
        (
            "RemoteStartTransaction",
            {"connectorId": "1", "idTag": "T1"},
            {"connectorId": 1, "idTag": "T1"},
        ),
        ("RemoteStartTransaction", {"connectorId": "", "idTag": "T1"}, {"idTag": "T1"}),
        ("GetConfiguration", {"key": "A, B"}, {"key": ["A", "B"]}),
        ("GetConfiguration", {"key": ""}, {}),
        (
            "ChangeAvailability",
            {"connectorId": "0", "type": "Inoperative"},
            {"connectorId": 0, "type": "Inoperative"},
        ),
    ],
)
def test_command_forms_become_ocpp_payloads(
    action: str, form: dict[str, str], payload: dict[str, object]
) -> None:
    """Form fields become the OCPP 1.6 request: integers parsed, empty optional fields left out."""
    assert command_payload(action, form) == payload


def test_a_non_integer_connector_is_refused() -> None:
    """connectorId must be an integer."""
    with pytest.raises(ValueError, match="connectorId: not an integer"):
        command_payload("UnlockConnector", {"connectorId": "one"})
