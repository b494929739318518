"""A test eMSP: a real OCPI 2.2.1 partner (an ASGI app on a free port) for csms to talk to.

It registers with csms through the credentials handshake (or lets csms register with it),
receives Location, Session, CDR and CommandResult pushes, and sends tokens and commands.
Every object csms sends it is checked against the strict 2.2.1 models as it arrives
(`invalid` collects what failed), and every request is recorded in order.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from csms.config import OcpiSettings
from csms.events.models_ocpi import Cdr, Evse, Location, Session, Tariff
from csms.events.models_ocpi_roaming import CommandResult, Credentials
from tests.support import MS, RunningCsms, free_port

COUNTRY, PARTY = "NL", "EMS"
NAMES = {"EMSP": "Test eMSP", "HUB": "Test hub"}


@dataclass
class Received:
    """One request csms made to the partner."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]


def _token(header: str | None) -> str | None:
    if header is None or not header.startswith("Token "):
        return None
    value = header.removeprefix("Token ")
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:
        return None


@dataclass
class FakeEmsp:
    """The partner's state, and its client side towards csms."""

    port: int
    # Tokens csms may present to us (token A we issued, or the token we gave at the handshake).
    accepted: set[str] = field(default_factory=set)
    # The token we present to csms (its token C, or the B it gave when it registered).
    token_for_csms: str | None = None
    csms_endpoints: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    cdrs: list[dict[str, Any]] = field(default_factory=list)
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tariffs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Who we are: an eMSP (NL/EMS), or a hub relaying for other parties (role HUB).
    country: str = COUNTRY
    party: str = PARTY
    role: str = "EMSP"
    # What POST tokens/{uid}/authorize answers: an AllowedType, or None for 404 Unknown
    # Token; with a gate, it answers only once the gate is set (a slow eMSP).
    authorize_answer: str | None = "ALLOWED"
    authorize_gate: asyncio.Event | None = None
    authorize_reference: str | None = "AUTH-REF-1"
    # POST tokens/{uid}/authorize requests received, and how many of them were answered.
    authorize_asked: int = 0
    authorize_answered: int = 0
    down: bool = False
    # Requests answered 503 because the partner was down.
    turned_away: int = 0
    # The demo (python -m tests.ocpi_partner): any token gets in, and each request is printed.
    demo: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def versions_url(self) -> str:
        return f"{self.url}/ocpi/versions"

    def of(self, method: str, prefix: str) -> list[Received]:
        return [r for r in self.received if r.method == method and r.path.startswith(prefix)]

    async def until(self, check: Callable[[], bool], *, within: float = 10_000 * MS) -> None:
        """Wait until `check()` holds (it is tried after every request received)."""
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(check)

    # -- the partner's client side --------------------------------------------------------

    def client(
        self, token: str | None = None, *, on_behalf_of: tuple[str, str] | None = None
    ) -> httpx.AsyncClient:
        """Our client towards csms; a hub names the party it relays for in OCPI-from."""
        secret = token if token is not None else self.token_for_csms
        assert secret is not None
        encoded = base64.b64encode(secret.encode()).decode()
        country, party = on_behalf_of or (self.country, self.party)
        return httpx.AsyncClient(
            headers={
                "Authorization": f"Token {encoded}",
                "X-Request-ID": str(uuid.uuid4()),
                "X-Correlation-ID": str(uuid.uuid4()),
                "OCPI-from-country-code": country,
                "OCPI-from-party-id": party,
            },
            timeout=10_000 * MS,
        )

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": self.versions_url,
            "roles": [
                {
                    "role": self.role,
                    "party_id": self.party,
                    "country_code": self.country,
                    "business_details": {"name": NAMES.get(self.role, "Test partner")},
                }
            ],
        }

    async def register_with(self, versions_url: str, token_a: str) -> dict[str, Any]:
        """The credentials handshake as Sender: versions, details, POST credentials."""
        token_b = f"emsp-{uuid.uuid4().hex}"
        self.accepted.add(token_b)
        async with self.client(token_a) as http:
            versions = (await http.get(versions_url)).json()["data"]
            details_url = next(v["url"] for v in versions if v["version"] == "2.2.1")
            details = (await http.get(details_url)).json()["data"]
            self.csms_endpoints = {
                f"{e['identifier']}:{e['role']}": e["url"] for e in details["endpoints"]
            }
            answer = await http.post(
                self.csms_endpoints["credentials:SENDER"], json=self.credentials(token_b)
            )
        body: dict[str, Any] = answer.json()
        assert body["status_code"] == 1000, body
        self.token_for_csms = body["data"]["token"]
        return body

    def endpoint(self, module: str, role: str) -> str:
        return self.csms_endpoints[f"{module}:{role}"]

    async def learn_endpoints(self, versions_url: str) -> None:
        """Fetch csms's endpoints with our current token."""
        async with self.client() as http:
            versions = (await http.get(versions_url)).json()["data"]
            details = (await http.get(versions[0]["url"])).json()["data"]
        self.csms_endpoints = {
            f"{e['identifier']}:{e['role']}": e["url"] for e in details["endpoints"]
        }


def token_object(
    uid: str,
    *,
    whitelist: str = "ALWAYS",
    token_type: str = "RFID",
    party: tuple[str, str] = (COUNTRY, PARTY),
    **more: Any,
) -> dict[str, Any]:
    """A Token of the test eMSP, or of another party (mod_tokens §Token Object)."""
    return {
        "country_code": party[0],
        "party_id": party[1],
        "uid": uid,
        "type": token_type,
        "contract_id": f"{party[0]}-{party[1]}-C{uid[-6:]}",
        "issuer": "Test eMSP",
        "valid": True,
        "whitelist": whitelist,
        "last_updated": "2026-01-01T00:00:00Z",
        **more,
    }


def _ok(data: Any = None, *, status: int = 1000, http: int = 200, **headers: str) -> Response:
    body: dict[str, Any] = {
        "status_code": status,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if data is not None:
        body["data"] = data
    return Response(
        orjson.dumps(body), status_code=http, media_type="application/json", headers=headers
    )


def _app(emsp: FakeEmsp) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Any:
        """Down: 503 to everything. Otherwise only tokens we handed out get in."""
        if emsp.down:
            emsp.turned_away += 1
            async with emsp.changed:
                emsp.changed.notify_all()
            return Response(status_code=503)
        if not emsp.demo and _token(request.headers.get("authorization")) not in emsp.accepted:
            return _ok(status=2000, http=401)
        if request.method == "GET":
            emsp.received.append(Received("GET", request.url.path, None, dict(request.headers)))
        response = await call_next(request)
        async with emsp.changed:
            emsp.changed.notify_all()
        return response

    async def body_of(request: Request) -> Any:
        """The request's JSON body, recorded with the request."""
        raw = await request.body()
        body = orjson.loads(raw) if raw else None
        emsp.received.append(
            Received(request.method, request.url.path, body, dict(request.headers))
        )
        if emsp.demo:
            print(request.method, request.url.path, orjson.dumps(body).decode(), flush=True)
        return body

    def check(model: type[BaseModel], body: Any, where: str) -> None:
        try:
            model.model_validate_json(orjson.dumps(body))
        except ValidationError as exc:
            emsp.invalid.append(f"{where}: {exc}")

    @app.get("/ocpi/versions")
    async def versions() -> Response:
        return _ok([{"version": "2.2.1", "url": f"{emsp.url}/ocpi/2.2.1"}])

    @app.get("/ocpi/2.2.1")
    async def details() -> Response:
        base = f"{emsp.url}/ocpi/2.2.1"
        endpoints = [
            {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
            {"identifier": "locations", "role": "RECEIVER", "url": f"{base}/locations"},
            {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/sessions"},
            {"identifier": "cdrs", "role": "RECEIVER", "url": f"{base}/cdrs"},
            {"identifier": "tariffs", "role": "RECEIVER", "url": f"{base}/tariffs"},
            {"identifier": "tokens", "role": "SENDER", "url": f"{base}/tokens"},
            {"identifier": "commands", "role": "SENDER", "url": f"{base}/commands"},
        ]
        return _ok({"version": "2.2.1", "endpoints": endpoints})

    @app.post("/ocpi/2.2.1/credentials")
    @app.put("/ocpi/2.2.1/credentials")
    async def credentials(request: Request) -> Response:
        """csms registers with us: fetch its endpoints with its token, answer with ours."""
        body = await body_of(request)
        check(Credentials, body, "credentials")
        emsp.token_for_csms = body["token"]
        await emsp.learn_endpoints(body["url"])
        ours = f"emsp-c-{uuid.uuid4().hex}"
        emsp.accepted.add(ours)
        return _ok(emsp.credentials(ours))

    @app.delete("/ocpi/2.2.1/credentials")
    async def unregister(request: Request) -> Response:
        await body_of(request)
        return _ok()

    @app.put("/ocpi/2.2.1/locations/{cc}/{pid}/{location_id}")
    async def put_location(location_id: str, request: Request) -> Response:
        body = await body_of(request)
        check(Location, body, f"location {location_id}")
        emsp.locations[location_id] = body
        return _ok()

    @app.patch("/ocpi/2.2.1/locations/{cc}/{pid}/{location_id}/{evse_uid}")
    async def patch_evse(location_id: str, evse_uid: str, request: Request) -> Response:
        body = await body_of(request)
        location = emsp.locations.get(location_id)
        evses = {e["uid"]: e for e in (location or {}).get("evses", [])}
        if evse_uid not in evses:
            return _ok(status=2003, http=404)
        if "last_updated" not in body:
            emsp.invalid.append(f"evse patch {evse_uid}: no last_updated")
        evses[evse_uid].update(body)
        check(Evse, evses[evse_uid], f"evse {evse_uid}")
        return _ok()

    @app.put("/ocpi/2.2.1/sessions/{cc}/{pid}/{session_id}")
    async def put_session(session_id: str, request: Request) -> Response:
        body = await body_of(request)
        check(Session, body, f"session {session_id}")
        emsp.sessions[session_id] = body
        return _ok()

    @app.patch("/ocpi/2.2.1/sessions/{cc}/{pid}/{session_id}")
    async def patch_session(session_id: str, request: Request) -> Response:
        body = await body_of(request)
        if session_id not in emsp.sessions:
            return _ok(status=2001, http=404)
        if "last_updated" not in body or "charging_periods" in body:
            emsp.invalid.append(f"session patch {session_id}: {sorted(body)}")
        emsp.sessions[session_id].update(body)
        check(Session, emsp.sessions[session_id], f"session {session_id}")
        return _ok()

    @app.post("/ocpi/2.2.1/cdrs")
    async def post_cdr(request: Request) -> Response:
        body = await body_of(request)
        check(Cdr, body, "cdr")
        emsp.cdrs.append(body)
        return _ok(Location=f"{emsp.url}/ocpi/2.2.1/cdrs/{body.get('id')}")

    @app.put("/ocpi/2.2.1/tariffs/{cc}/{pid}/{tariff_id}")
    async def put_tariff(tariff_id: str, request: Request) -> Response:
        body = await body_of(request)
        check(Tariff, body, f"tariff {tariff_id}")
        emsp.tariffs[tariff_id] = body
        return _ok()

    @app.delete("/ocpi/2.2.1/tariffs/{cc}/{pid}/{tariff_id}")
    async def delete_tariff(tariff_id: str, request: Request) -> Response:
        await body_of(request)
        emsp.tariffs.pop(tariff_id, None)
        return _ok()

    @app.post("/ocpi/2.2.1/tokens/{uid}/authorize")
    async def authorize(uid: str, request: Request) -> Response:
        await body_of(request)
        emsp.authorize_asked += 1
        async with emsp.changed:
            emsp.changed.notify_all()
        if emsp.authorize_gate is not None:
            await emsp.authorize_gate.wait()
        emsp.authorize_answered += 1
        if emsp.authorize_answer is None:
            return _ok(status=2004, http=404)
        info: dict[str, Any] = {
            "allowed": emsp.authorize_answer,
            "token": token_object(
                uid, whitelist="NEVER", token_type=request.query_params.get("type", "RFID")
            ),
        }
        if emsp.authorize_reference is not None:
            info["authorization_reference"] = emsp.authorize_reference
        return _ok(info)

    @app.post("/ocpi/2.2.1/commands/{command}/{reference}")
    async def command_result(command: str, reference: str, request: Request) -> Response:
        body = await body_of(request)
        check(CommandResult, body, f"result {reference}")
        emsp.results.append((reference, body))
        return _ok()

    return app


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@asynccontextmanager
async def running_emsp() -> AsyncIterator[FakeEmsp]:
    """A test eMSP listening on a free port of 127.0.0.1.

    The socket is bound and listening before the server task starts, so csms can connect
    at once (connections wait in the backlog until uvicorn accepts them).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    emsp = FakeEmsp(port=sock.getsockname()[1])
    server = _Server(uvicorn.Config(_app(emsp), log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield emsp
    finally:
        server.should_exit = True
        async with asyncio.timeout(10_000 * MS):
            await task
        sock.close()


def ocpi_settings(**changes: Any) -> OcpiSettings:
    """The OCPI listener on a free loopback port; the test eMSP is on loopback too."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "allow_private_targets": True,
        "retry_max_delay": 200 * MS,
        **changes,
    }
    return OcpiSettings(**values)


async def registered_emsp(csms: RunningCsms, emsp: FakeEmsp, partner_id: str = "emsp") -> None:
    """The eMSP registers with csms (token A from the operator API, then the handshake)."""
    async with csms.api() as api:
        created = await api.put(
            f"/partners/{partner_id}",
            json={"countryCode": "NL", "partyId": "EMS", "roles": ["EMSP"], "name": "Test eMSP"},
        )
    assert created.status_code == 201, created.text
    await emsp.register_with(csms.ocpi_versions_url, created.json()["tokenA"])


async def _demo(port: int) -> None:
    emsp = FakeEmsp(port=port, demo=True)
    server = _Server(uvicorn.Config(_app(emsp), host="127.0.0.1", port=port, log_config=None))
    print(f"test eMSP: versions at {emsp.versions_url}, any token accepted", flush=True)
    await server.serve()


if __name__ == "__main__":
    # The README's roaming walk-through: a partner that shows what csms sends it.
    import argparse

    parser = argparse.ArgumentParser(description="a test OCPI 2.2.1 eMSP on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8290)
    asyncio.run(_demo(parser.parse_args().port))
