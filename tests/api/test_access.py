"""Accounts, API keys and scopes: every route of the OpenAPI tried with every role."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from sqlalchemy import select

from csms.api.auth import guard
from csms.core.access import verify_account_password
from csms.store.tables import Account, ApiKey
from tests.support import MS, RunningCsms, running_csms, settings_for

# The roles of the issue, as the API sees them: API keys with one scope each.
ROLE_SCOPES = {"viewer": "read", "operator": "commands", "admin": "admin"}
RANK = {"read": 0, "commands": 1, "admin": 2}


@pytest.fixture
async def locked_csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms with a bootstrap token whose /metrics needs a credential even on loopback."""
    settings = settings_for(database_url)
    api = dataclasses.replace(settings.api, metrics_open_on_loopback=False)
    async with running_csms(dataclasses.replace(settings, api=api)) as running:
        yield running


async def make_key(csms: RunningCsms, scope: str) -> str:
    async with csms.api() as api:
        created = await api.post("/api-keys", json={"name": f"{scope} key", "scopes": [scope]})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def declared(operation: dict[str, Any]) -> list[str]:
    scopes: list[str] = []
    for requirement in operation.get("security", []):
        scopes += requirement.get("bearer", [])
    return scopes


def concrete(path: str, operation: dict[str, Any]) -> str:
    """The path with every parameter filled with a value that passes its schema."""
    kinds = {
        p["name"]: p.get("schema", {}).get("type")
        for p in operation.get("parameters", [])
        if p["in"] == "path"
    }
    return re.sub(
        r"{(\w+)}", lambda m: "424242" if kinds.get(m.group(1)) == "integer" else "NOPE-1", path
    )


async def test_every_route_declares_a_scope_and_enforces_it(locked_csms: RunningCsms) -> None:
    """Each OpenAPI operation names one scope; no credential is 401, too low a scope 403."""
    csms = locked_csms
    keys = {role: await make_key(csms, scope) for role, scope in ROLE_SCOPES.items()}
    root = csms.api_url.removesuffix("/api/v1")
    async with httpx.AsyncClient(base_url=root, timeout=10_000 * MS) as client:
        spec = (await client.get("/openapi.json")).json()
        undeclared: list[str] = []
        wrong: list[str] = []
        tried = 0
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                scopes = declared(operation)
                if len(scopes) != 1:
                    undeclared.append(f"{method.upper()} {path}: {scopes}")
                    continue
                needed = scopes[0]
                url = concrete(path, operation)
                body = {} if "requestBody" in operation else None
                callers: dict[str, str | None] = {"anonymous": None, **keys}
                callers["api.token"] = csms.api_token
                for role, key in callers.items():
                    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
                    answer = await client.request(method.upper(), url, json=body, headers=headers)
                    tried += 1
                    held = "admin" if role == "api.token" else ROLE_SCOPES.get(role)
                    if held is None:
                        expected_refusal: int | None = 401
                    elif RANK[held] < RANK[needed]:
                        expected_refusal = 403
                    else:
                        expected_refusal = None
                    refused = answer.status_code in (401, 403)
                    if (expected_refusal is None and refused) or (
                        expected_refusal is not None and answer.status_code != expected_refusal
                    ):
                        wrong.append(f"{role} {method.upper()} {url}: {answer.status_code}")
    assert undeclared == []
    assert wrong == []
    assert tried > 40 * 5


async def test_a_route_without_a_declared_scope_is_for_admins(csms: RunningCsms) -> None:
    """A route added to /api/v1 without require(...) fails closed: admins only."""
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(guard)])

    @router.get("/undeclared")
    async def undeclared() -> dict[str, str]:
        return {"ok": "yes"}

    api_app = csms.app.api_app
    api_app.include_router(router)
    viewer = await make_key(csms, "read")
    async with httpx.AsyncClient(base_url=csms.api_url) as client:
        anonymous = await client.get("/undeclared")
        as_viewer = await client.get("/undeclared", headers={"Authorization": f"Bearer {viewer}"})
    async with csms.api() as admin:
        as_admin = await admin.get("/undeclared")
    assert anonymous.status_code == 401
    assert as_viewer.status_code == 403
    assert as_viewer.json() == {"detail": "this route needs the admin scope (key:read key)"}
    assert as_admin.status_code == 200


@pytest.mark.postgres
async def test_api_key_is_shown_once_stored_as_a_digest_and_revocable(csms: RunningCsms) -> None:
    """POST answers the key once; lists show a hint; DELETE makes the next request 401."""
    async with csms.api() as api:
        created = await api.post("/api-keys", json={"name": "exporter", "scopes": ["read"]})
        listed = await api.get("/api-keys")
    body = created.json()
    key = body["key"]
    assert key.startswith("csk_")
    assert (body["name"], body["scopes"], body["createdBy"]) == ("exporter", ["read"], "api.token")
    assert key not in listed.text
    assert listed.json()["items"][0]["hint"] == key[:8]
    async with csms.app.database.sessions() as session:
        stored = (await session.execute(select(ApiKey))).scalars().one()
    assert key not in stored.key_digest
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=csms.api_url, headers=headers) as client:
        me = (await client.get("/me")).json()
        before = await client.get("/charge-points")
        async with csms.api() as api:
            revoked = await api.delete(f"/api-keys/{body['id']}")
        after = await client.get("/charge-points")
    assert me == {"name": "key:exporter", "kind": "key", "scopes": ["read"]}
    assert before.status_code == 200
    assert revoked.status_code == 204
    assert after.status_code == 401


async def test_scopes_of_a_key_include_the_lower_ones(csms: RunningCsms) -> None:
    """A commands key may read too; an admin key holds all three scopes."""
    commands = await make_key(csms, "commands")
    admin = await make_key(csms, "admin")
    async with httpx.AsyncClient(base_url=csms.api_url) as client:
        as_commands = await client.get("/me", headers={"Authorization": f"Bearer {commands}"})
        as_admin = await client.get("/me", headers={"Authorization": f"Bearer {admin}"})
    assert as_commands.json()["scopes"] == ["read", "commands"]
    assert as_admin.json()["scopes"] == ["read", "commands", "admin"]


@pytest.mark.postgres
async def test_accounts_are_managed_by_admins(csms: RunningCsms) -> None:
    """Create (password hashed), 409 on a taken name, 422 on a short password, patch, delete."""
    async with csms.api() as api:
        created = await api.post(
            "/accounts",
            json={"username": "ada", "password": "a long passphrase", "role": "viewer"},
        )
        taken = await api.post(
            "/accounts",
            json={"username": "ada", "password": "another passphrase", "role": "admin"},
        )
        short = await api.post(
            "/accounts", json={"username": "bob", "password": "short", "role": "admin"}
        )
        bad_role = await api.post(
            "/accounts", json={"username": "bob", "password": "long enough!", "role": "root"}
        )
        account_id = created.json()["accountId"]
        patched = await api.patch(f"/accounts/{account_id}", json={"role": "operator"})
        listed = await api.get("/accounts")
        deleted = await api.delete(f"/accounts/{account_id}")
        gone = await api.get(f"/accounts/{account_id}")
    assert created.status_code == 201
    assert created.json()["role"] == "viewer"
    assert "passphrase" not in created.text
    assert taken.status_code == 409
    assert short.status_code == 422
    assert "at least 10 characters" in short.json()["detail"]
    assert bad_role.status_code == 422
    assert patched.json()["role"] == "operator"
    assert [item["username"] for item in listed.json()["items"]] == ["ada"]
    assert deleted.status_code == 204
    assert gone.status_code == 404


async def test_account_password_is_stored_as_scrypt(csms: RunningCsms) -> None:
    """Only a salted scrypt hash of an operator password is kept."""
    async with csms.api() as api:
        await api.post(
            "/accounts",
            json={"username": "eve", "password": "a long passphrase", "role": "admin"},
        )
    async with csms.app.database.sessions() as session:
        row = (await session.execute(select(Account))).scalars().one()
    assert row.password_hash.startswith("scrypt$32768$8$3$")
    assert verify_account_password("a long passphrase", row.password_hash)
    assert not verify_account_password("a long passphrasE", row.password_hash)


@pytest.fixture
async def open_csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms with an empty api.token on loopback: the newcomer's open API."""
    settings = settings_for(database_url)
    api = dataclasses.replace(settings.api, token="")
    async with running_csms(dataclasses.replace(settings, api=api)) as running:
        yield running


async def test_open_api_makes_callers_admins_but_checks_presented_keys(
    open_csms: RunningCsms,
) -> None:
    """Empty token on loopback: no credential is an admin; a viewer key stays a viewer."""
    async with httpx.AsyncClient(base_url=open_csms.api_url) as anonymous:
        created = await anonymous.post("/api-keys", json={"name": "v", "scopes": ["read"]})
        key = created.json()["key"]
        as_viewer = await anonymous.post(
            "/api-keys",
            json={"name": "w", "scopes": ["read"]},
            headers={"Authorization": f"Bearer {key}"},
        )
        wrong = await anonymous.get("/me", headers={"Authorization": "Bearer csk_nope"})
        me = await anonymous.get("/me")
    assert created.status_code == 201
    assert as_viewer.status_code == 403
    assert wrong.status_code == 401
    assert me.json() == {"name": "open", "kind": "open", "scopes": ["read", "commands", "admin"]}
