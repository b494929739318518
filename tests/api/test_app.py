"""The HTTP API: bearer auth, 422 with reasons, 404s, pagination, write-only secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from csms.store.tables import ChargePoint
from tests.api.test_locations import GENT
from tests.support import RunningCsms, running_csms, settings_for


async def test_requests_without_the_token_are_refused(csms: RunningCsms) -> None:
    """Missing or wrong bearer token: 401 with a reason."""
    async with httpx.AsyncClient(base_url=csms.api_url) as anonymous:
        missing = await anonymous.get("/charge-points")
        wrong = await anonymous.get("/charge-points", headers={"Authorization": "Bearer nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"detail": "missing or wrong bearer token"}


@pytest.fixture
async def open_csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms with an empty token on loopback."""
    settings = settings_for(database_url)
    settings = type(settings)(
        ocpp=settings.ocpp,
        api=type(settings.api)(host="127.0.0.1", port=0, token=""),
        database=settings.database,
        log=settings.log,
    )
    async with running_csms(settings) as running:
        yield running


async def test_empty_token_on_loopback_needs_no_auth(open_csms: RunningCsms) -> None:
    """With an empty token (loopback only) the API answers without credentials."""
    async with httpx.AsyncClient(base_url=open_csms.api_url) as anonymous:
        assert (await anonymous.get("/charge-points")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "reason"),
    [
        ("put", "/id-tags/T1", {"status": "Maybe"}, "body.status"),
        ("put", "/id-tags/T1", {}, "body.status: Field required"),
        ("put", "/id-tags/T1", {"status": "Accepted", "color": "red"}, "body.color"),
        ("put", "/id-tags/" + "x" * 21, {"status": "Accepted"}, "path.id_tag"),
        ("put", "/id-tags/T1", {"status": "Accepted", "expiryDate": "soon"}, "body.expiryDate"),
        ("put", "/charge-points/CP1", {"securityProfile": 5}, "body.securityProfile"),
        ("put", "/charge-points/CP1", {"password": "short"}, "body.password"),
        ("put", "/charge-points/" + "A" * 49, {}, "path.charge_point_id"),
        ("get", "/transactions?limit=0", None, "query.limit"),
        ("get", "/transactions?active=perhaps", None, "query.active"),
        ("get", "/transactions/abc", None, "path.transaction_id"),
    ],
)
async def test_bad_requests_get_422_with_a_reason(
    csms: RunningCsms, method: str, path: str, body: object, reason: str
) -> None:
    """Invalid input is a 422 whose detail string names the field."""
    async with csms.api() as api:
        response = await api.request(method.upper(), path, json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert reason in detail


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/charge-points/NOPE"),
        ("delete", "/charge-points/NOPE"),
        ("get", "/id-tags/NOPE"),
        ("delete", "/id-tags/NOPE"),
        ("get", "/transactions/424242"),
    ],
)
async def test_unknown_ids_are_404(csms: RunningCsms, method: str, path: str) -> None:
    """Unknown resources are 404 with a reason."""
    async with csms.api() as api:
        response = await api.request(method.upper(), path)
    assert response.status_code == 404
    assert response.json()["detail"].endswith("not found")


@pytest.mark.postgres
async def test_charge_point_password_is_write_only(csms: RunningCsms) -> None:
    """The password is stored as a salted hash and never returned."""
    password = "0123456789abcdef0123"
    async with csms.api() as api:
        # A charge point may only name a location that exists (issue 13: 422 otherwise).
        place = await api.put("/locations/L1", json=GENT)
        assert place.status_code == 201, place.text
        created = await api.put(
            "/charge-points/CP-PW",
            json={"name": "Bay 7", "securityProfile": 1, "password": password, "locationId": "L1"},
        )
        updated = await api.put("/charge-points/CP-PW", json={"name": "Bay 8"})
    assert created.status_code == 201
    assert updated.status_code == 200
    body = updated.json()
    assert (body["name"], body["securityProfile"], body["locationId"]) == ("Bay 8", 1, "L1")
    assert password not in created.text + updated.text
    assert "password" not in body
    assert body["networkStatus"] == "never_connected"
    async with csms.app.database.sessions() as session:
        stored = (await session.execute(select(ChargePoint.password_hash))).scalar_one()
    assert stored is not None
    assert password not in stored
    # 20 characters are a text password (a key has 32-40 hex digits): scrypt, tuned cost.
    assert stored.startswith("scrypt$1024$8$1$")
    assert csms.app.passwords.verify(password.encode(), stored).ok


@pytest.mark.postgres
async def test_id_tag_lifecycle(csms: RunningCsms) -> None:
    """PUT creates (201) then replaces (200); GET, list and DELETE complete the set."""
    async with csms.api() as api:
        first = await api.put("/id-tags/CARD1", json={"status": "Accepted", "parentIdTag": "FLEET"})
        second = await api.put(
            "/id-tags/CARD1", json={"status": "Blocked", "expiryDate": "2030-01-01T00:00:00+01:00"}
        )
        got = (await api.get("/id-tags/CARD1")).json()
        listed = (await api.get("/id-tags")).json()
        deleted = await api.delete("/id-tags/CARD1")
        gone = await api.get("/id-tags/CARD1")
    assert (first.status_code, second.status_code) == (201, 200)
    assert got == {
        "idTag": "CARD1",
        "status": "Blocked",
        "expiryDate": "2029-12-31T23:00:00Z",
        "parentIdTag": None,
        "userId": None,
    }
    assert listed["total"] == 1
    assert (deleted.status_code, gone.status_code) == (204, 404)


@pytest.mark.postgres
async def test_lists_paginate_and_filter(csms: RunningCsms) -> None:
    """limit and offset page through items; total counts them all; active filters."""
    async with csms.api() as api:
        for n in range(5):
            await api.put(f"/charge-points/CP-{n}", json={})
    async with csms.charger("CP-0") as cp:
        for connector in (1, 2):
            await cp.call(
                "StartTransaction",
                {
                    "connectorId": connector,
                    "idTag": "A",
                    "meterStart": 0,
                    "timestamp": "2024-01-01T00:00:00Z",
                },
            )
        await cp.call(
            "StopTransaction",
            {"transactionId": 1, "meterStop": 5, "timestamp": "2024-01-01T01:00:00Z"},
        )
    async with csms.api() as api:
        page = (await api.get("/charge-points", params={"limit": 2, "offset": 2})).json()
        active = (await api.get("/transactions", params={"active": "true"})).json()
        done = (
            await api.get("/transactions", params={"active": "false", "chargePointId": "CP-0"})
        ).json()
        other = (await api.get("/transactions", params={"chargePointId": "CP-4"})).json()
    assert page["total"] == 5
    assert [item["id"] for item in page["items"]] == ["CP-2", "CP-3"]
    assert (active["total"], done["total"], other["total"]) == (1, 1, 0)
    assert active["items"][0]["status"] == "active"


async def test_charge_point_view_matches_the_contract(csms: RunningCsms) -> None:
    """GET /charge-points/{id} has the fields of docs/api.md, connectors with the OCPI status."""
    async with csms.charger("CP-VIEW") as cp:
        await cp.call(
            "StatusNotification",
            {
                "connectorId": 1,
                "errorCode": "GroundFailure",
                "status": "Faulted",
                "vendorErrorCode": "E42",
                "info": "leak",
            },
        )
        async with csms.api() as api:
            body = (await api.get("/charge-points/CP-VIEW")).json()
    assert {
        "id",
        "connected",
        "lastSeen",
        "bootStatus",
        "vendor",
        "model",
        "serialNumber",
        "firmwareVersion",
        "networkStatus",
        "connectors",
    } <= set(body)
    assert body["connected"] is True
    (connector,) = body["connectors"]
    assert connector == {
        "connectorId": 1,
        "status": "Faulted",
        "errorCode": "GroundFailure",
        "info": "leak",
        "vendorErrorCode": "E42",
        "vendorErrorText": None,
        "ocpiStatus": "OUTOFORDER",
        "updatedAt": connector["updatedAt"],
    }
    assert connector["updatedAt"].endswith("Z")


async def test_openapi_is_served(csms: RunningCsms) -> None:
    """OpenAPI lives at /openapi.json and the docs at /docs."""
    root = csms.api_url.removesuffix("/api/v1")
    async with httpx.AsyncClient(base_url=root) as client:
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert "/api/v1/transactions/{transaction_id}" in spec["paths"]
    assert docs.status_code == 200


async def test_health(csms: RunningCsms) -> None:
    """The health endpoint reports the database and connected chargers."""
    async with csms.charger():
        async with csms.api() as api:
            body = (await api.get("/health")).json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["connectedChargers"] == 1
    assert body["outboxBacklog"] >= 0


async def test_vendor_error_codes_explain_connector_errors(csms: RunningCsms) -> None:
    """A registered (vendor, vendorErrorCode) text shows on the connector that reports it."""
    async with csms.api() as api:
        created = await api.put(
            "/vendor-error-codes/TestVendor/E42", json={"description": "RCD tripped"}
        )
        replaced = await api.put(
            "/vendor-error-codes/TestVendor/E42", json={"description": "Residual current trip"}
        )
        async with csms.charger("CP-VEC") as cp:
            await cp.call(
                "StatusNotification",
                {
                    "connectorId": 1,
                    "errorCode": "OtherError",
                    "status": "Faulted",
                    "vendorErrorCode": "E42",
                },
            )
        connector = (await api.get("/charge-points/CP-VEC")).json()["connectors"][0]
        listed = (await api.get("/vendor-error-codes")).json()
        deleted = await api.delete("/vendor-error-codes/TestVendor/E42")
        gone = await api.get("/vendor-error-codes/TestVendor/E42")
    assert (created.status_code, replaced.status_code) == (201, 200)
    assert connector["vendorErrorText"] == "Residual current trip"
    assert listed["total"] == 1
    assert (deleted.status_code, gone.status_code) == (204, 404)


async def test_users_own_id_tags(csms: RunningCsms) -> None:
    """Users are created, own tags through userId, and unknown users are refused."""
    async with csms.api() as api:
        created = (
            await api.post("/users", json={"name": "Ada", "email": "ada@example.com"})
        ).json()
        user_id = created["userId"]
        await api.put("/id-tags/ADA-1", json={"status": "Accepted", "userId": user_id})
        await api.put("/id-tags/ADA-2", json={"status": "Blocked", "userId": user_id})
        unknown = await api.put("/id-tags/X-1", json={"status": "Accepted", "userId": "nobody"})
        bad_email = await api.put("/users/u1", json={"name": "Bob", "email": "not-an-email"})
        got = (await api.get(f"/users/{user_id}")).json()
        blocked = (
            await api.get("/id-tags", params={"status": "Blocked", "userId": user_id})
        ).json()
        deleted = await api.delete(f"/users/{user_id}")
        orphan_tag = (await api.get("/id-tags/ADA-1")).json()
    assert got["idTags"] == ["ADA-1", "ADA-2"]
    assert [tag["idTag"] for tag in blocked["items"]] == ["ADA-2"]
    assert unknown.status_code == 422
    assert "unknown user" in unknown.json()["detail"]
    assert bad_email.status_code == 422
    assert deleted.status_code == 204
    assert orphan_tag["userId"] is None


async def test_every_request_body_is_documented_with_an_example(csms: RunningCsms) -> None:
    """OpenAPI: each endpoint that takes a body shows an example of it."""
    root = csms.api_url.removesuffix("/api/v1")
    async with httpx.AsyncClient(base_url=root) as client:
        spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            reference = body["schema"].get("$ref", "")
            model = schemas.get(reference.rsplit("/", 1)[-1], {})
            if "examples" not in body and "examples" not in model and "example" not in model:
                missing.append(f"{method.upper()} {path}")
    assert missing == []
