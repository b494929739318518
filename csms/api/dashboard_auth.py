"""Dashboard logins: session cookies, CSRF tokens, rate-limited and logged login attempts.

The cookie holds 256 random bits; the database keeps their SHA-256 and a CSRF token for
the session, which every state-changing form must send back (docs/operations.md,
"The dashboard"). Before a login (the login form itself, and the open dashboard of an
empty `api.token`) the CSRF token lives in a cookie of its own (double submit).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl

import structlog
from fastapi import Request, Response

from csms.api.context import ApiContext
from csms.config import DashboardSettings
from csms.core.access import (
    Role,
    hash_account_password,
    new_token,
    same_token,
    token_digest,
    verify_account_password,
)
from csms.core.security import FailedAttempts
from csms.store import accounts

log = structlog.get_logger("csms.dashboard")

SESSION_COOKIE = "csms_session"
CSRF_COOKIE = "csms_csrf"
MAX_FORM_BYTES = 16_384


@dataclass(frozen=True)
class Visitor:
    """Who is looking at the dashboard, and the CSRF token their forms must carry."""

    name: str
    role: Role
    csrf_token: str
    open: bool = False  # the open dashboard of an empty api.token: nobody logged in

    @property
    def may_command(self) -> bool:
        return self.role in (Role.OPERATOR, Role.ADMIN)


@dataclass(frozen=True)
class LoginOutcome:
    token: str | None = None
    retry_after: float | None = None


class DashboardAuth:
    def __init__(self, *, ctx: ApiContext, settings: DashboardSettings, open_access: bool):
        self._ctx = ctx
        self._settings = settings
        self.open_access = open_access
        self._failures = FailedAttempts(limit=settings.max_failed_logins)
        # Compared against when the username is unknown, so that the answer takes as long.
        self._decoy: str | None = None

    async def visitor(self, request: Request) -> Visitor | None:
        """The logged-in visitor (or the open dashboard's), else None."""
        if self.open_access:
            return Visitor(name="open", role=Role.ADMIN, csrf_token=csrf_cookie(request), open=True)
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        digest = token_digest(token)
        found = await self._ctx.read(
            lambda session: accounts.find_session(
                session, token_digest=digest, now=self._ctx.clock()
            )
        )
        if found is None:
            return None
        return Visitor(name=found.username, role=Role(found.role), csrf_token=found.csrf_token)

    async def log_in(self, *, username: str, password: str, remote: str) -> LoginOutcome:
        """Check a login; a token for the new session, or why not (throttled or wrong)."""
        metrics = self._ctx.metrics.dashboard_logins
        wait = self._failures.retry_after(remote, now=time.monotonic())
        if wait is not None:
            log.warning("login_throttled", username=username, remote_address=remote)
            metrics.labels("throttled").inc()
            return LoginOutcome(retry_after=wait)
        account = await self._ctx.read(lambda session: accounts.find_account(session, username))
        if account is None and self._decoy is None:
            self._decoy = await asyncio.to_thread(
                hash_account_password, secrets.token_hex(8), salt=secrets.token_bytes(16)
            )
        stored = account.password_hash if account is not None else self._decoy or ""
        matched = await asyncio.to_thread(verify_account_password, password, stored)
        if account is None or not matched:
            self._failures.record(remote, now=time.monotonic())
            log.warning("login_failed", username=username, remote_address=remote)
            metrics.labels("failed").inc()
            return LoginOutcome()
        token = new_token(secrets.token_bytes(32))
        now = self._ctx.clock()
        await self._ctx.write(
            lambda session: accounts.start_session(
                session,
                token_digest=token_digest(token),
                account_id=account.id,
                csrf_token=new_token(secrets.token_bytes(24)),
                remote_address=remote[:64],
                now=now,
                expires_at=now + timedelta(hours=self._settings.session_hours),
            )
        )
        log.info("login_succeeded", username=username, role=account.role, remote_address=remote)
        metrics.labels("ok").inc()
        return LoginOutcome(token=token)

    async def log_out(self, request: Request) -> None:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            digest = token_digest(token)
            await self._ctx.write(
                lambda session: accounts.end_session(session, token_digest=digest)
            )

    def set_session(self, request: Request, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(self._settings.session_hours * 3600),
            path="/",
            httponly=True,
            secure=self.secure(request),
            samesite="strict",
        )

    def secure(self, request: Request) -> bool:
        """Secure cookies over HTTPS, or always when configured (behind a TLS proxy)."""
        return self._settings.cookie_secure or request.url.scheme == "https"

    def keep_csrf_cookie(self, request: Request, response: Response, token: str) -> None:
        """Set the pre-login CSRF cookie when the request did not carry it yet."""
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                path="/",
                httponly=True,
                secure=self.secure(request),
                samesite="strict",
            )


def csrf_cookie(request: Request) -> str:
    """The pre-login CSRF token: the cookie's, or a new one (set it on the response)."""
    found = request.cookies.get(CSRF_COOKIE)
    if found and 20 <= len(found) <= 64:
        return found
    token = request.state.__dict__.get("new_csrf")
    if token is None:
        token = new_token(secrets.token_bytes(24))
        request.state.new_csrf = token
    return str(token)


def csrf_ok(given: str | None, expected: str) -> bool:
    return bool(given) and same_token(given or "", expected)


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (without a multipart dependency).

    Raises:
        ValueError: the body is too large or not a form.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise ValueError("expected a form (application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ValueError("form too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def remote_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
