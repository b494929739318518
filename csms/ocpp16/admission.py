"""Who may open an OCPP session: identity, security profile, credentials, before the upgrade.

Everything here runs in `process_request`, so a refused attempt never reaches the
session of the charger it claims to be (docs/security.md, "Who gets in") and costs no
WebSocket state.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from csms.config import OcppSettings, SecuritySettings
from csms.core.identity import identity_from_path
from csms.core.passwords import PasswordHasher, Scheme
from csms.core.registration import RegistrationStatus, UnknownChargerPolicy
from csms.core.security import (
    BasicCredentials,
    ClientCertificate,
    ClientCnRule,
    FailedAttempts,
    MalformedAuthorization,
    Presented,
    Registration,
    decide,
    hex_text_key,
    parse_basic_authorization,
)
from csms.metrics import Metrics
from csms.ocpp16.sockets import Peer
from csms.store import chargers
from csms.store.db import Database
from csms.store.tables import ChargePoint

log = structlog.get_logger("csms.security")


@dataclass(frozen=True)
class Admission:
    """What the upgrade request established about the charger."""

    charge_point_id: str
    known: bool
    accepted: bool
    location_id: str | None
    # The security profile this connection reached (0-3).
    profile: int = 0
    # Raise the charger's registered profile to `profile` (SecWP A05.FR.09).
    ratchet: bool = False
    # The operator's decision (a new charger gets the unknown-charger policy's).
    registration: RegistrationStatus = RegistrationStatus.ACCEPTED
    # From its last BootNotification: which leniency rule applies (docs/ocpp.md).
    vendor: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A refused upgrade, as a security event: never carries the password."""

    charge_point_id: str
    known: bool
    remote_address: str | None
    reason: str
    status: int


RefusalHook = Callable[[Refusal], Awaitable[None]]
# (charge point id, the stored hash that matched, its replacement)
UpgradeHook = Callable[[str, str, str], None]


def server_tls_context(security: SecuritySettings) -> ssl.SSLContext:
    """TLS 1.2 or newer with the configured certificate; client certificates verified
    against `ca_file` when a charger offers one (profile 3)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # SecWP A00.FR.312/314: TLS 1.2 or above; A00.FR.320: no compression.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.load_cert_chain(security.cert_file, security.key_file)
    if security.ca_file:
        context.load_verify_locations(cafile=security.ca_file)
        # Optional, so that profile-2 chargers (Basic auth, no certificate) share the port;
        # a certificate that is offered must chain to the CA or the handshake fails.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class Gatekeeper:
    """Decides, per upgrade request, whether and at which profile a charger gets in."""

    def __init__(
        self,
        *,
        ocpp: OcppSettings,
        security: SecuritySettings,
        database: Database,
        passwords: PasswordHasher | None = None,
        on_refused: RefusalHook | None = None,
        on_password_upgrade: UpgradeHook | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        counters: Counter[str] | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.ocpp = ocpp
        self.security = security
        self.database = database
        self.passwords = passwords or PasswordHasher()
        self.on_refused = on_refused
        self.on_password_upgrade = on_password_upgrade
        self.counters = counters if counters is not None else Counter()
        self._monotonic = monotonic
        self._policy = UnknownChargerPolicy(ocpp.unknown_charger_policy)
        # Failures are throttled per identity, and per address only at a much higher limit:
        # many healthy chargers may share one carrier NAT address.
        self._identity_failures = FailedAttempts(limit=security.max_failed_auth)
        self._address_failures = FailedAttempts(limit=security.max_failed_auth_per_address)
        self._lookup = ChargePointLookup(database)
        # Verified passwords, so that a reconnect does not pay for scrypt again: keyed by
        # identity, holding the stored hash and a keyed digest of the password it matched.
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._cache_key = secrets.token_bytes(32)

    async def lookup(self, identity: str) -> ChargePoint | None:
        """The registration of `identity`, read together with concurrent upgrades'."""
        return await self._lookup.get(identity)

    async def admit(self, connection: Peer, request: Request) -> Admission | Response:
        """An Admission for the session, or the HTTP response that refuses it."""
        remote = _remote_address(connection)
        identity, problem = identity_from_path(request.path)
        if identity is None:
            assert problem is not None
            status = (
                HTTPStatus.NOT_FOUND if problem.startswith("not found") else HTTPStatus.BAD_REQUEST
            )
            log.warning("upgrade_refused", path=request.path[:200], reason=problem)
            return refuse(status, problem)
        row = await self._lookup.get(identity)
        if row is None and self._policy is UnknownChargerPolicy.REJECT:
            # OCPP-J §3.2 and 1.6 errata §3.68: an unknown charger gets HTTP 404, not a Reject.
            return await self._refused(
                Refusal(identity, False, remote, "unknown charge point", HTTPStatus.NOT_FOUND)
            )
        presented = await self._presented(connection, request, identity, row)
        if isinstance(presented, Response):
            return presented
        verdict = decide(
            identity=identity,
            registration=_registration(row),
            presented=presented,
            min_profile=self.security.min_profile,
            cn_rule=ClientCnRule(self.security.client_cn),
            organization=self.security.organization,
        )
        if not verdict.admitted:
            assert verdict.status is not None
            assert verdict.reason is not None
            return await self._refused(
                Refusal(identity, row is not None, remote, verdict.reason, verdict.status)
            )
        # Correct credentials always get in, however many failures came before them.
        self._identity_failures.forget(identity)
        return _admission(identity, row, verdict.profile, self._policy)

    async def _presented(
        self, connection: Peer, request: Request, identity: str, row: ChargePoint | None
    ) -> Presented | Response:
        tls = connection.transport.get_extra_info("ssl_object") is not None
        certificate = _client_certificate(connection) if tls else None
        header = request.headers.get("Authorization")
        basic: BasicCredentials | None = None
        if header is not None and certificate is None:
            try:
                basic = parse_basic_authorization(header)
            except MalformedAuthorization as exc:
                remote = _remote_address(connection)
                return await self._refused(
                    Refusal(identity, row is not None, remote, str(exc), HTTPStatus.UNAUTHORIZED)
                )
        password_ok = False
        if basic is not None and basic.username == identity and row is not None:
            password_ok = await self._check_password(row, basic.password)
        return Presented(tls=tls, certificate=certificate, basic=basic, password_ok=password_ok)

    async def _check_password(self, row: ChargePoint, presented: bytes) -> bool:
        stored = row.password_hash
        if stored is None:
            return False
        if self._matches(row.id, stored, presented):
            return True
        if await self._verify(row.id, presented, stored):
            self._remember(row.id, stored, presented)
            return True
        meant = hex_text_key(presented) if row.password_hex_compat else None
        if meant is not None and await self._verify(row.id, meant, stored):
            # Some chargers send the key's hex text instead of the raw bytes (OCPP-J §6.2.2);
            # allowed per charger, and logged so that the operator can get the charger fixed
            # (docs/security.md, "Passwords (profiles 1 and 2)").
            log.warning("hex_password_compat_used", charge_point_id=row.id)
            self._remember(row.id, stored, presented)
            return True
        return False

    async def _verify(self, identity: str, secret: bytes, stored: str) -> bool:
        """Check a secret against the stored hash; a hash of an older scheme is replaced."""
        passwords = self.passwords
        if passwords.is_slow(stored):
            check = await asyncio.to_thread(passwords.verify, secret, stored)
        else:
            check = passwords.verify(secret, stored)  # an HMAC: microseconds, on the loop
        if check.problem is not None:
            log.error("password_not_checked", charge_point_id=identity, reason=check.problem)
        if check.ok and check.upgrade and self.on_password_upgrade is not None:
            # Contract v1.1: a hash of an older scheme is upgraded on the next good login.
            salt = secrets.token_bytes(16)
            if passwords.scheme_for(secret) is Scheme.SCRYPT:
                upgraded = await asyncio.to_thread(passwords.hash, secret, salt=salt)
            else:
                upgraded = passwords.hash(secret, salt=salt)
            self.on_password_upgrade(identity, stored, upgraded)
        return check.ok

    def _digest(self, presented: bytes) -> bytes:
        return hmac.new(self._cache_key, presented, hashlib.sha256).digest()

    def _matches(self, identity: str, stored: str, presented: bytes) -> bool:
        cached = self._verified.get(identity)
        if cached is None or cached[0] != stored:
            return False
        return hmac.compare_digest(cached[1], self._digest(presented))

    def _remember(self, identity: str, stored: str, presented: bytes) -> None:
        self._verified[identity] = (stored, self._digest(presented))

    async def _refused(self, refusal: Refusal) -> Response:
        now = self._monotonic()
        address = refusal.remote_address or ""
        wait = max(
            self._identity_failures.retry_after(refusal.charge_point_id, now=now) or 0.0,
            self._address_failures.retry_after(address, now=now) or 0.0,
        )
        self._identity_failures.record(refusal.charge_point_id, now=now)
        self._address_failures.record(address, now=now)
        self.counters["auth.refused"] += 1
        if wait > 0:
            self.metrics.refusal("too many failed attempts")
            # Past the limit a failure costs a log line and a 429, no stored event: a
            # misconfigured fleet or a guesser is told to back off and fills nothing.
            self.counters["auth.throttled"] += 1
            log.warning(
                "upgrade_throttled",
                charge_point_id=refusal.charge_point_id,
                remote_address=refusal.remote_address,
                reason=refusal.reason,
            )
            return refuse(
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many failed attempts; correct credentials are still accepted",
                retry_after=wait,
            )
        # A01.FR.09: the reason is safe to log; the password never is.
        log.warning(
            "upgrade_refused",
            charge_point_id=refusal.charge_point_id,
            remote_address=refusal.remote_address,
            reason=refusal.reason,
            status=refusal.status,
        )
        self.metrics.refusal(refusal.reason)
        if self.on_refused is not None:
            await self.on_refused(refusal)
        status = HTTPStatus(refusal.status)
        challenge = status is HTTPStatus.UNAUTHORIZED
        return refuse(status, refusal.reason, challenge=challenge)


def _admission(
    identity: str, row: ChargePoint | None, profile: int, policy: UnknownChargerPolicy
) -> Admission:
    if row is None:
        return Admission(
            charge_point_id=identity,
            known=False,
            accepted=False,
            location_id=None,
            profile=profile,
            registration=policy.first_status,
        )
    registration = RegistrationStatus(row.registration_status)
    return Admission(
        charge_point_id=identity,
        known=True,
        # OCPP-J §5.4: a charger accepted once may carry on without booting again.
        accepted=registration is RegistrationStatus.ACCEPTED and row.first_accepted_at is not None,
        location_id=row.location_id,
        profile=profile,
        ratchet=profile > row.security_profile,
        registration=registration,
        vendor=row.vendor,
        model=row.model,
    )


class ChargePointLookup:
    """Registrations read for many upgrades at once.

    After a restart thousands of chargers reconnect within seconds; one query per upgrade
    would queue them behind each other, so the identities asked for while a query runs are
    read together by the next one (docs/performance.md, "P3, connections").
    """

    CHUNK = 500

    def __init__(self, database: Database) -> None:
        self._database = database
        self._waiting: dict[str, list[asyncio.Future[ChargePoint | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def get(self, identity: str) -> ChargePoint | None:
        future: asyncio.Future[ChargePoint | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(identity, []).append(future)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        return await future

    async def _read(self) -> None:
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, {}
                try:
                    rows = await self._fetch(list(waiting))
                except Exception as exc:
                    for futures in waiting.values():
                        _settle(futures, error=exc)
                    continue
                for identity, futures in waiting.items():
                    _settle(futures, row=rows.get(identity))
        finally:
            self._reader = None

    async def _fetch(self, identities: list[str]) -> dict[str, ChargePoint]:
        rows: dict[str, ChargePoint] = {}
        async with self._database.reading() as session:
            for start in range(0, len(identities), self.CHUNK):
                chunk = identities[start : start + self.CHUNK]
                for row in await chargers.get_charge_points(session, chunk):
                    rows[row.id] = row
        return rows


def _settle(
    futures: list[asyncio.Future[ChargePoint | None]],
    *,
    row: ChargePoint | None = None,
    error: BaseException | None = None,
) -> None:
    for future in futures:
        if future.done():
            continue  # the upgrade was abandoned meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(row)


def _registration(row: ChargePoint | None) -> Registration | None:
    if row is None:
        return None
    serials = tuple(
        serial for serial in (row.charge_box_serial_number, row.serial_number) if serial
    )
    return Registration(
        security_profile=row.security_profile,
        has_password=row.password_hash is not None,
        serial_numbers=serials,
    )


def _remote_address(connection: Peer) -> str | None:
    address: Any = connection.remote_address
    return str(address[0]) if address else None


def _client_certificate(connection: Peer) -> ClientCertificate | None:
    # The TLS layer already verified the chain against ca_file (CERT_OPTIONAL).
    peer = connection.transport.get_extra_info("peercert")
    if not peer:
        return None
    fields: dict[str, str] = {}
    for rdn in peer.get("subject", ()):
        for name, value in rdn:
            fields.setdefault(name, value)
    return ClientCertificate(
        common_name=fields.get("commonName"), organization=fields.get("organizationName")
    )


def refuse(
    status: HTTPStatus, reason: str, *, challenge: bool = False, retry_after: float | None = None
) -> Response:
    """A plain-text HTTP refusal of the upgrade."""
    body = f"{status.value} {status.phrase}: {reason}\n".encode()
    headers = Headers(
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    if challenge:
        headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return Response(status.value, status.phrase, headers, body)
