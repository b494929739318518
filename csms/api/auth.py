"""Who is calling the API, and whether a route lets them: bearer credentials and scopes.

Every API route declares the scope it needs with `require(Scope.X)` in its decorator's
`dependencies`; the declaration also puts the scope into the route's OpenAPI `security`
entry (`{"bearer": ["read"]}`), which tests/api/test_access.py reads to try every route
with every role. A route that declares nothing still needs a credential, and then the
`admin` scope: a forgotten declaration fails closed (docs/operations.md, "Accounts").

Credentials (`Authorization: Bearer ...`):
- `api.token`, the bootstrap admin key (docs/api.md);
- an API key made with `POST /api/v1/api-keys`, with its scopes;
- nothing, when `api.token` is empty (loopback only): the open API of a newcomer's
  `make run`, where the caller is an admin. A credential that is presented is still
  checked, so a key's scopes apply even then.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.access import Scope, grants, implied_scopes, same_token, token_digest
from csms.store import accounts
from csms.store.tables import ApiKey


class CredentialKind(StrEnum):
    TOKEN = "token"  # api.token
    KEY = "key"  # an API key
    ACCOUNT = "account"  # a dashboard login
    OPEN = "open"  # nothing, on an open API


@dataclass(frozen=True)
class Principal:
    """The caller of a request: who, by which kind of credential, with which scopes."""

    name: str
    kind: CredentialKind
    scopes: frozenset[Scope]


ReadKey = Callable[[str], Awaitable[ApiKey | None]]


class Authenticator:
    """Turns a presented bearer credential into a Principal."""

    def __init__(
        self,
        *,
        token: str,
        read_key: ReadKey,
        metrics_open_on_loopback: bool,
    ) -> None:
        self._token = token
        self._read_key = read_key
        self.metrics_open_on_loopback = metrics_open_on_loopback

    @property
    def open(self) -> bool:
        """No `api.token`: callers without a credential are admins (loopback only)."""
        return not self._token

    async def principal(self, presented: str | None) -> Principal | None:
        """The caller, or None when the credential is missing (and needed) or wrong."""
        if not presented:
            if self.open:
                return Principal(
                    name="open", kind=CredentialKind.OPEN, scopes=implied_scopes([Scope.ADMIN])
                )
            return None
        if self._token and same_token(presented, self._token):
            return Principal(
                name="api.token", kind=CredentialKind.TOKEN, scopes=implied_scopes([Scope.ADMIN])
            )
        key = await self._read_key(token_digest(presented))
        if key is None:
            return None
        scopes = implied_scopes([Scope(scope) for scope in key.scopes if scope in _SCOPES])
        return Principal(name=f"key:{key.name}", kind=CredentialKind.KEY, scopes=scopes)


_SCOPES = {scope.value for scope in Scope}


def key_reader(read: Callable[..., Awaitable[Any]]) -> ReadKey:
    """A ReadKey over `ApiContext.read`."""

    async def read_key(digest: str) -> ApiKey | None:
        async def query(session: AsyncSession) -> ApiKey | None:
            return await accounts.find_api_key(session, key_digest=digest)

        found: ApiKey | None = await read(query)
        return found

    return read_key


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`api.token` (the bootstrap admin key) or an API key (`csk_...`)",
)


def _unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or wrong bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller; 401 without a valid credential (unless the API is open)."""
    authenticator: Authenticator = request.app.state.authenticator
    presented = credentials.credentials if credentials is not None else None
    found = await authenticator.principal(presented)
    if found is None:
        raise _unauthorized()
    request.state.principal = found
    return found


# The caller of a route, for routes that record who did something (FastAPI resolves
# `authenticate` once per request, so this costs nothing beside `require`).
Caller = Annotated[Principal, Depends(authenticate)]


def _forbidden(principal: Principal, needed: Scope) -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN, f"this route needs the {needed.value} scope ({principal.name})"
    )


@cache
def _check(needed: Scope) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not grants(principal.scopes, needed):
            raise _forbidden(principal, needed)
        return principal

    check.__name__ = f"require_{needed.value}"
    _DECLARED[check] = needed
    return check


_DECLARED: dict[Callable[..., Any], Scope] = {}


def require(needed: Scope) -> Any:
    """A route dependency: the caller needs `needed`; also declares it in the OpenAPI."""
    return Security(_check(needed), scopes=[needed.value])


def declared_scope(route: APIRoute) -> Scope | None:
    """The scope a route declared with `require`, or None."""
    for dependency in route.dependant.dependencies:
        if dependency.call in _DECLARED:
            return _DECLARED[dependency.call]
    return None


async def guard(request: Request, principal: Annotated[Principal, Depends(authenticate)]) -> None:
    """Router-wide: a route that declared no scope is for admins only (fails closed)."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and declared_scope(route) is None:
        if not grants(principal.scopes, Scope.ADMIN):
            raise _forbidden(principal, Scope.ADMIN)


async def _metrics_check(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    authenticator: Authenticator = request.app.state.authenticator
    client = request.client.host if request.client is not None else ""
    if authenticator.metrics_open_on_loopback and is_loopback_address(client):
        return
    principal = await authenticate(request, credentials)
    if not grants(principal.scopes, Scope.READ):
        raise _forbidden(principal, Scope.READ)


_DECLARED[_metrics_check] = Scope.READ


def require_metrics() -> Any:
    """`read`, or nothing for a loopback client when `api.metrics_open_on_loopback`."""
    return Security(_metrics_check, scopes=[Scope.READ.value])


def is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
