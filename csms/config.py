"""Settings: config.toml plus CSMS_<SECTION>__<KEY> environment overrides, frozen once loaded."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from csms.errors import ConfigError

ENV_PREFIX = "CSMS_"
# The bootstrap admin key, when the API is reachable beyond loopback (docs/security.md).
MIN_API_TOKEN_LENGTH = 16

# What happens to a charger csms does not know (OCPP 1.6 §4.2, docs/ocpp.md "Connecting").
UNKNOWN_CHARGER_POLICIES = ("accept", "reject", "pending")
# The WebSocket layer under the OCPP-J listeners (docs/ocpp.md, "Transports"): "auto" takes
# picows when it is installed (the `speed` extra), else websockets, the reference.
OCPP_TRANSPORTS = ("auto", "websockets", "picows")
# The schema deviations a leniency rule may normalise (docs/ocpp.md, "Tolerant mode").
LENIENCY_DEVIATIONS = (
    "long_strings",
    "decimal_integers",
    "enum_case",
    "numbers_as_strings",
    "strings_as_numbers",
    "naive_timestamps",
    "unknown_fields",
)


@dataclass(frozen=True)
class LeniencyRule:
    """Which schema deviations to normalise for the chargers whose BootNotification vendor
    and model match (shell-style patterns, case-insensitive)."""

    vendor: str = "*"
    model: str = "*"
    normalise: tuple[str, ...] = ()
    # For naive_timestamps: the IANA zone the charger's timestamps without offset are in.
    timezone: str = ""


@dataclass(frozen=True)
class OcppSettings:
    host: str = "0.0.0.0"
    port: int = 9000
    call_timeout: float = 30.0
    heartbeat_interval: int = 300
    # Deprecated alias of unknown_chargers: true = "accept", false = "reject".
    allow_unknown_chargers: bool = True
    # "accept", "reject" or "pending"; empty takes allow_unknown_chargers.
    unknown_chargers: str = ""
    # Seconds a Pending charger waits before its next BootNotification (OCPP 1.6 §4.2).
    pending_interval: int = 300
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    # A charger silent for 2 x heartbeat_interval + heartbeat_grace seconds is offline.
    heartbeat_grace: float = 60.0
    # Largest frame a charger may send; a bigger one closes the connection with 1009.
    max_frame_size: int = 1024 * 1024
    # Fragments of one message, and seconds from its first fragment to its last; beyond
    # either the connection is closed with 1009 (docs/security.md, "Limits and hostile input").
    max_fragments: int = 1024
    fragment_timeout: float = 10.0
    # Largest DataTransfer data (characters) kept; a bigger one gets a CALLERROR.
    max_data_transfer: int = 65536
    # Bytes of answers kept per connection so that a retried message gets the same answer.
    answer_cache_bytes: int = 65536
    command_queue_size: int = 16
    offline_grace: float = 600.0
    long_term_offline: float = 86400.0
    # Tolerant mode: strict unless a rule matches the charger's vendor and model.
    leniency: tuple[LeniencyRule, ...] = ()
    # "auto", "websockets" or "picows" (OCPP_TRANSPORTS).
    transport: str = "auto"

    @property
    def unknown_charger_policy(self) -> str:
        """The effective policy for unknown chargers: accept, reject or pending."""
        if self.unknown_chargers:
            return self.unknown_chargers
        return "accept" if self.allow_unknown_chargers else "reject"


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8180
    token: str = field(default="", repr=False)
    # GET /metrics answers a client on a loopback address without a credential.
    metrics_open_on_loopback: bool = True
    # Largest request body read (bytes); a bigger one gets 413 before it is parsed.
    max_body_bytes: int = 1024 * 1024
    # The API's thread runs at this nice value (0-19, Linux), so that on a busy core the
    # chargers' loop is run first (docs/architecture.md, "Two loops").
    thread_nice: int = 10


@dataclass(frozen=True)
class MqttSettings:
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "csms"
    embedded: bool = True
    outbox_retention: float = 86400.0


@dataclass(frozen=True)
class OcpiSettings:
    """Who we are in OCPI/OICP terms, and the OCPI 2.2.1 CPO listener (docs/ocpi.md)."""

    country_code: str = "XX"
    party_id: str = "CSM"
    currency: str = "EUR"
    # The OCPI listener, separate from the operator API; port 0 means no listener.
    host: str = "127.0.0.1"
    port: int = 0
    # The URL partners reach the listener at (behind a proxy, say); empty: http(s)://host:port.
    base_url: str = ""
    # TLS for the listener (PEM); both or neither.
    cert_file: str = ""
    key_file: str = ""
    # The name in our credentials' business_details.
    name: str = "csms"
    # Outgoing calls to private, loopback or link-local addresses (like webhooks).
    allow_private_targets: bool = False
    # Seconds an outgoing OCPI call may take, and a real-time authorization (mod_tokens).
    call_timeout: float = 10.0
    authorize_timeout: float = 3.0
    # Largest request body the listener reads, in bytes.
    max_body_bytes: int = 1_000_000
    # Seconds between checks that each partner holds what it should (locations withdrawn,
    # EVSEs added), besides the pushes that follow every change.
    resync_interval: float = 300.0
    # Longest wait (seconds) between retries of a push to a partner that is down.
    retry_max_delay: float = 60.0


@dataclass(frozen=True)
class SecuritySettings:
    """Security profiles 1-3 of the OCPP 1.6 Security Whitepaper (edition 3)."""

    # The plain ws:// listener on ocpp.host:ocpp.port serves profiles 0 and 1.
    plain_listener: bool = True
    # The TLS listener (profiles 2 and 3); tls_port 0 means no TLS listener.
    tls_host: str = "0.0.0.0"
    tls_port: int = 0
    cert_file: str = ""
    key_file: str = ""
    # CA certificate(s) that profile-3 client certificates must chain to.
    ca_file: str = ""
    # Key of the first certificate in ca_file: csms then signs SignCertificate CSRs.
    ca_key_file: str = ""
    certificate_days: int = 365
    # What a profile-3 client certificate's CN must equal: the charger "identity",
    # its "serial" number (SecWP A00.FR.405), or "none".
    client_cn: str = "identity"
    # When set, profile-3 client certificates must carry this O (SecWP A00.FR.404).
    organization: str = ""
    # The lowest profile any charger may connect with.
    min_profile: int = 0
    # Failed authentications per charger identity and minute before its failures get 429.
    max_failed_auth: int = 10
    # The same per remote address: many chargers behind one carrier NAT share one.
    max_failed_auth_per_address: int = 1000
    # Keys the HMAC of AuthorizationKeys; empty: a file next to a SQLite database.
    password_pepper: str = field(default="", repr=False)


@dataclass(frozen=True)
class DashboardSettings:
    """The operator dashboard at `/` on the API listener (docs/operations.md)."""

    enabled: bool = True
    # How long a dashboard login lasts (hours), whatever the activity.
    session_hours: float = 12.0
    # Mark the session cookie Secure even over plain HTTP (behind a TLS-terminating proxy);
    # it is always Secure when the request itself came over HTTPS.
    cookie_secure: bool = False
    # Failed logins per remote address and minute before the login answers 429.
    max_failed_logins: int = 5


@dataclass(frozen=True)
class WalletSettings:
    """Drivers' wallets and subscriptions (docs/tariffs.md)."""

    # Seconds between looks for subscriptions whose period ended (renewed or expired).
    renewal_interval: float = 60.0


@dataclass(frozen=True)
class WebhookSettings:
    """Webhook deliveries (docs/webhooks.md): targets, retries, bounds, rotation, pruning."""

    # Loopback, private and link-local targets are refused unless this is set.
    allow_private_targets: bool = False
    # Delays between attempts of one delivery; the last one repeats while it keeps failing.
    retry_schedule: str = "5s, 30s, 2m, 10m, 1h, 6h, 12h"
    connect_timeout: float = 5.0
    # Seconds for the whole answer after connecting (Standard Webhooks: 15-30 s).
    read_timeout: float = 15.0
    # Bytes of an answer's body read and kept in the delivery log; the rest is not read.
    response_body_bytes: int = 1024
    # Deliveries in flight per subscription (each for a different charger).
    max_in_flight: int = 64
    # Seconds the previous secret still signs after POST .../rotate-secret.
    rotation_overlap: float = 86400.0
    # Delivery log rows are kept this long (seconds).
    log_retention: float = 86400.0
    # An enabled subscription keeps outbox rows it has not had for at most this long.
    max_hold: float = 259200.0

    def retry_delays(self) -> tuple[float, ...]:
        """`retry_schedule` in seconds.

        Raises:
            ValueError: empty, or an item that is not a positive duration.
        """
        return parse_durations(self.retry_schedule)


@dataclass(frozen=True)
class BalancingSettings:
    """Circuit load balancing (docs/load-balancing.md): when passes run, leases, hysteresis."""

    enabled: bool = True
    # Seconds a pass waits after its first trigger, to take the others with it.
    coalesce: float = 1.0
    # Seconds between safety passes (they also renew leases).
    tick: float = 60.0
    # Seconds a TxProfile's limit holds before it falls back to the safe share; renewed
    # when less than renew_before is left.
    lease: int = 1800
    renew_before: int = 600
    # An increase goes only when it is at least this many amps, after the connector's limit
    # has been steady for increase_hold seconds (resume_hold from 0 A).
    increase_min: float = 1.0
    increase_hold: float = 30.0
    resume_hold: float = 60.0
    # A session whose meter values are older than this freezes increases on its circuit.
    meter_stale: float = 180.0
    # Seconds after a change before the draw is compared with the limit.
    overdraw_grace: float = 60.0
    # A car offered current that draws nothing (SuspendedEV, or under 1 A) this long is
    # idle: it keeps its minimum only when nobody else needs it.
    idle_after: float = 300.0
    # Seconds a session keeps its minimum slot while others wait at 0 A (more cars than
    # slots); then the slots rotate.
    rotate: float = 1800.0
    # Seconds before a safe default the charger did not take is sent again; doubles each
    # time, up to 15 minutes.
    default_retry: float = 10.0


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///./csms.db"


@dataclass(frozen=True)
class ClusterSettings:
    """Several nodes on one PostgreSQL and one broker (docs/deployment.md)."""

    enabled: bool = False
    # Stable per node (a restart with the same id ends that node's old connections);
    # empty takes the host name.
    node_id: str = ""
    # Outbox partitions, each published by one node at a time; the same on every node.
    partitions: int = 16
    heartbeat_interval: float = 2.0
    # A node silent this long is dead: its chargers are let go, its partitions adopted.
    lease_seconds: float = 10.0
    # QoS 2 messages a partition keeps unreleased at once: at most the broker's
    # max_inflight_messages (Mosquitto: 20), which drops the excess after acknowledging it.
    mqtt_inflight: int = 20

    @property
    def node(self) -> str:
        return self.node_id or socket.gethostname()


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class Settings:
    ocpp: OcppSettings = OcppSettings()
    api: ApiSettings = ApiSettings()
    mqtt: MqttSettings = MqttSettings()
    ocpi: OcpiSettings = OcpiSettings()
    security: SecuritySettings = SecuritySettings()
    dashboard: DashboardSettings = DashboardSettings()
    wallet: WalletSettings = WalletSettings()
    webhooks: WebhookSettings = WebhookSettings()
    balancing: BalancingSettings = BalancingSettings()
    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()
    cluster: ClusterSettings = ClusterSettings()


_SECTIONS: dict[str, type[Any]] = {
    "ocpp": OcppSettings,
    "api": ApiSettings,
    "mqtt": MqttSettings,
    "ocpi": OcpiSettings,
    "security": SecuritySettings,
    "dashboard": DashboardSettings,
    "wallet": WalletSettings,
    "webhooks": WebhookSettings,
    "balancing": BalancingSettings,
    "database": DatabaseSettings,
    "log": LogSettings,
    "cluster": ClusterSettings,
}
_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOG_FORMATS = ("json", "console")
_CLIENT_CN_RULES = ("identity", "serial", "none")


def load_settings(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from a TOML file (optional) and the environment.

    Raises:
        ConfigError: the file is unreadable, or a key is unknown, mistyped or out of range.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    values = _merge_env(raw, os.environ if environ is None else environ)
    settings = Settings(**{name: _build_section(name, values.get(name, {})) for name in values})
    _check(settings)
    return settings


def _merge_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for section, content in raw.items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown config section [{section}]")
        if not isinstance(content, dict):
            raise ConfigError(f"config key {section} must be a section")
        values[section] = dict(content)
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            raise ConfigError(f"unknown config section in environment variable {name}")
        values.setdefault(section, {})[key] = _EnvText(text)
    return values


class _EnvText(str):
    """A value from the environment: text to be converted to the key's type."""


def _build_section(section: str, values: dict[str, Any]) -> Any:
    cls = _SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {section}.{key} (known: {known})")
        default = fields[key].default
        kwargs[key] = _coerce(f"{section}.{key}", value, type(default))
    return cls(**kwargs)


def _coerce(key: str, value: Any, kind: type[Any]) -> Any:
    if kind is tuple:
        return _table_list(key, value)
    if isinstance(value, _EnvText):
        return _parse_env(key, str(value), kind)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise ConfigError(
            f"config key {key} must be {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


# Keys holding a list of tables (TOML `[[section.key]]`; JSON text in the environment).
_TABLE_LISTS: dict[str, type[Any]] = {"ocpp.leniency": LeniencyRule}


def _table_list(key: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, _EnvText):
        try:
            value = orjson.loads(str(value))
        except orjson.JSONDecodeError:
            raise ConfigError(f"config key {key} must be a JSON list of objects") from None
    cls = _TABLE_LISTS[key]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"config key {key} must be a list of tables")
    names = {f.name: f for f in dataclasses.fields(cls)}
    items = []
    for index, table in enumerate(value):
        kwargs: dict[str, Any] = {}
        for name, item in table.items():
            where = f"{key}[{index}].{name}"
            if name not in names:
                raise ConfigError(f"unknown config key {where} (known: {', '.join(names)})")
            kind = type(names[name].default)
            if kind is tuple:
                if not isinstance(item, list) or not all(isinstance(x, str) for x in item):
                    raise ConfigError(f"config key {where} must be a list of strings")
                item = tuple(item)
            elif type(item) is not kind:
                raise ConfigError(f"config key {where} must be {kind.__name__}, got {item!r}")
            kwargs[name] = item
        items.append(cls(**kwargs))
    return tuple(items)


def _parse_env(key: str, text: str, kind: type[Any]) -> Any:
    if kind is str:
        return text
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config key {key} must be a boolean (true/false), got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"config key {key} must be {kind.__name__}, got {text!r}") from None


def _check(settings: Settings) -> None:
    ports = (
        ("ocpp.port", settings.ocpp.port),
        ("api.port", settings.api.port),
        ("security.tls_port", settings.security.tls_port),
        ("ocpi.port", settings.ocpi.port),
    )
    for key, port in ports:
        if not 0 <= port <= 65535:
            raise ConfigError(f"config key {key} must be between 0 and 65535, got {port}")
    positive = {
        "ocpp.call_timeout": settings.ocpp.call_timeout,
        "ocpp.heartbeat_interval": settings.ocpp.heartbeat_interval,
        "ocpp.ping_interval": settings.ocpp.ping_interval,
        "ocpp.ping_timeout": settings.ocpp.ping_timeout,
        "ocpp.command_queue_size": settings.ocpp.command_queue_size,
        "ocpp.offline_grace": settings.ocpp.offline_grace,
        "ocpp.pending_interval": settings.ocpp.pending_interval,
        "ocpp.heartbeat_grace": settings.ocpp.heartbeat_grace,
        "ocpp.max_frame_size": settings.ocpp.max_frame_size,
        "ocpp.max_fragments": settings.ocpp.max_fragments,
        "ocpp.fragment_timeout": settings.ocpp.fragment_timeout,
        "ocpp.max_data_transfer": settings.ocpp.max_data_transfer,
        "ocpp.answer_cache_bytes": settings.ocpp.answer_cache_bytes,
        "ocpp.long_term_offline": settings.ocpp.long_term_offline,
        "mqtt.outbox_retention": settings.mqtt.outbox_retention,
        "dashboard.session_hours": settings.dashboard.session_hours,
        "dashboard.max_failed_logins": settings.dashboard.max_failed_logins,
        "wallet.renewal_interval": settings.wallet.renewal_interval,
        "ocpi.call_timeout": settings.ocpi.call_timeout,
        "ocpi.authorize_timeout": settings.ocpi.authorize_timeout,
        "ocpi.max_body_bytes": settings.ocpi.max_body_bytes,
        "api.max_body_bytes": settings.api.max_body_bytes,
        "ocpi.resync_interval": settings.ocpi.resync_interval,
        "ocpi.retry_max_delay": settings.ocpi.retry_max_delay,
    }
    for key, number in positive.items():
        if number <= 0:
            raise ConfigError(f"config key {key} must be positive, got {number}")
    _check_ocpp(settings.ocpp)
    if settings.log.level not in _LOG_LEVELS:
        raise ConfigError(f"config key log.level must be one of {', '.join(_LOG_LEVELS)}")
    if settings.log.format not in _LOG_FORMATS:
        raise ConfigError(f"config key log.format must be one of {', '.join(_LOG_FORMATS)}")
    ocpi = settings.ocpi
    if not re.fullmatch(r"[A-Z]{2}", ocpi.country_code):
        raise ConfigError("config key ocpi.country_code must be two capital letters (ISO 3166)")
    if not re.fullmatch(r"[A-Z0-9]{3}", ocpi.party_id):
        raise ConfigError("config key ocpi.party_id must be three capital letters or digits")
    if not re.fullmatch(r"[A-Z]{3}", ocpi.currency):
        raise ConfigError("config key ocpi.currency must be an ISO 4217 code such as EUR")
    _check_ocpi_listener(ocpi)
    if not settings.mqtt.url.startswith("mqtt://"):
        raise ConfigError("config key mqtt.url must start with mqtt://")
    db = settings.database.url
    if not db.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            "config key database.url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    _check_security(settings.security)
    _check_webhooks(settings.webhooks)
    _check_balancing(settings.balancing)
    _check_cluster(settings.cluster, database_url=db)
    if not settings.api.token and not is_loopback(settings.api.host):
        raise ConfigError(
            f"config key api.token must be set when api.host ({settings.api.host}) is not loopback"
        )
    if not 0 <= settings.api.thread_nice <= 19:
        raise ConfigError("config key api.thread_nice must be between 0 and 19")
    if not is_loopback(settings.api.host) and len(settings.api.token) < MIN_API_TOKEN_LENGTH:
        # Reachable from the network, the bootstrap admin key must not be guessable.
        raise ConfigError(
            f"config key api.token must have {MIN_API_TOKEN_LENGTH} characters or more when "
            f"api.host ({settings.api.host}) is not loopback"
        )


def exposure_warnings(settings: Settings) -> list[str]:
    """What in a valid configuration lets anyone on the network act as a charger.

    The shipped config.toml keeps a newcomer's first five minutes easy: a plain listener on
    every interface, no charger authentication (profile 0), unknown chargers registered on
    first contact. Together these let anyone who reaches the port register identities or
    take over a charger's session; docs/security.md, "Production configuration", says what
    to change. Empty when any of the three is closed.
    """
    ocpp, security = settings.ocpp, settings.security
    if not security.plain_listener or is_loopback(ocpp.host):
        return []
    if security.min_profile > 0 or ocpp.unknown_charger_policy != "accept":
        return []
    return [
        f"the plain ws:// listener on {ocpp.host}:{ocpp.port} is reachable beyond loopback",
        "security.min_profile is 0: chargers connect without any authentication",
        "ocpp.unknown_chargers accepts any identity on first contact",
    ]


def _check_cluster(cluster: ClusterSettings, *, database_url: str) -> None:
    if not cluster.enabled:
        return
    if not database_url.startswith("postgresql+asyncpg://"):
        raise ConfigError("config key cluster.enabled needs a postgresql+asyncpg:// database.url")
    if not 1 <= cluster.mqtt_inflight <= 65535:
        raise ConfigError("config key cluster.mqtt_inflight must be between 1 and 65535")
    if not 1 <= cluster.partitions <= 4096:
        raise ConfigError("config key cluster.partitions must be between 1 and 4096")
    if cluster.heartbeat_interval <= 0:
        raise ConfigError("config key cluster.heartbeat_interval must be positive")
    if cluster.lease_seconds < 2 * cluster.heartbeat_interval:
        raise ConfigError(
            "config key cluster.lease_seconds must be at least twice cluster.heartbeat_interval"
        )
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", cluster.node):
        raise ConfigError("config key cluster.node_id must be 1-64 letters, digits, '.', '_', '-'")


def _check_ocpp(ocpp: OcppSettings) -> None:
    if ocpp.transport not in OCPP_TRANSPORTS:
        raise ConfigError("config key ocpp.transport must be one of " + ", ".join(OCPP_TRANSPORTS))
    if ocpp.unknown_chargers and ocpp.unknown_chargers not in UNKNOWN_CHARGER_POLICIES:
        raise ConfigError(
            "config key ocpp.unknown_chargers must be one of " + ", ".join(UNKNOWN_CHARGER_POLICIES)
        )
    for index, rule in enumerate(ocpp.leniency):
        where = f"ocpp.leniency[{index}]"
        unknown = [name for name in rule.normalise if name not in LENIENCY_DEVIATIONS]
        if unknown:
            raise ConfigError(
                f"config key {where}.normalise has unknown deviations {', '.join(unknown)} "
                f"(known: {', '.join(LENIENCY_DEVIATIONS)})"
            )
        if ("naive_timestamps" in rule.normalise) != bool(rule.timezone):
            raise ConfigError(f"config key {where}.timezone goes with naive_timestamps, only")
        if rule.timezone:
            try:
                zoneinfo.ZoneInfo(rule.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"config key {where}.timezone is not an IANA time zone: {rule.timezone!r}"
                ) from None


def _check_security(security: SecuritySettings) -> None:
    if security.client_cn not in _CLIENT_CN_RULES:
        raise ConfigError(
            f"config key security.client_cn must be one of {', '.join(_CLIENT_CN_RULES)}"
        )
    if not 0 <= security.min_profile <= 3:
        raise ConfigError("config key security.min_profile must be between 0 and 3")
    if (
        security.certificate_days <= 0
        or security.max_failed_auth <= 0
        or security.max_failed_auth_per_address <= 0
    ):
        raise ConfigError(
            "config keys security.certificate_days, max_failed_auth and "
            "max_failed_auth_per_address must be positive"
        )
    if security.password_pepper and len(security.password_pepper) < 32:
        raise ConfigError("config key security.password_pepper must have 32 characters or more")
    if security.tls_port and not (security.cert_file and security.key_file):
        raise ConfigError(
            "config keys security.cert_file and security.key_file are needed for security.tls_port"
        )
    if security.ca_key_file and not security.ca_file:
        raise ConfigError("config key security.ca_key_file needs security.ca_file")
    if not security.plain_listener and not security.tls_port:
        raise ConfigError(
            "config keys security.plain_listener and security.tls_port leave no OCPP listener"
        )


def _check_balancing(balancing: BalancingSettings) -> None:
    for name in ("coalesce", "tick", "lease", "increase_hold", "resume_hold", "meter_stale"):
        if getattr(balancing, name) <= 0 and name not in ("coalesce",):
            raise ConfigError(f"config key balancing.{name} must be positive")
    if balancing.coalesce < 0 or balancing.increase_min < 0 or balancing.overdraw_grace < 0:
        raise ConfigError("config keys balancing.coalesce, increase_min, overdraw_grace >= 0")
    if not 0 <= balancing.renew_before < balancing.lease:
        raise ConfigError("config key balancing.renew_before must be below balancing.lease")


def _check_webhooks(webhooks: WebhookSettings) -> None:
    try:
        webhooks.retry_delays()
    except ValueError as exc:
        raise ConfigError(f"config key webhooks.retry_schedule: {exc}") from None
    positive = {
        "webhooks.connect_timeout": webhooks.connect_timeout,
        "webhooks.read_timeout": webhooks.read_timeout,
        "webhooks.response_body_bytes": webhooks.response_body_bytes,
        "webhooks.max_in_flight": webhooks.max_in_flight,
        "webhooks.log_retention": webhooks.log_retention,
        "webhooks.max_hold": webhooks.max_hold,
    }
    for key, number in positive.items():
        if number <= 0:
            raise ConfigError(f"config key {key} must be positive, got {number}")
    if webhooks.rotation_overlap < 0:
        raise ConfigError("config key webhooks.rotation_overlap must not be negative")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_durations(text: str) -> tuple[float, ...]:
    """Seconds from text such as ``"5s, 30s, 2m, 1h"`` (a bare number is seconds).

    Raises:
        ValueError: empty, or an item that is not a positive duration.
    """
    seconds = []
    for item in text.split(","):
        match = _DURATION.fullmatch(item.strip())
        if match is None or float(match.group(1)) <= 0:
            raise ValueError(f"{item.strip()!r} is not a positive duration like 5s, 2m or 1h")
        seconds.append(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return tuple(seconds)


def _check_ocpi_listener(ocpi: OcpiSettings) -> None:
    if bool(ocpi.cert_file) != bool(ocpi.key_file):
        raise ConfigError("config keys ocpi.cert_file and ocpi.key_file go together")
    if ocpi.base_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", ocpi.base_url):
        raise ConfigError("config key ocpi.base_url must be an http(s) URL without query")
    if not ocpi.port or is_loopback(ocpi.host):
        return
    # Partners cannot guess the address they reach us at, and OCPI transport_and_format
    # §Security and authentication protects the interfaces with TLS: off loopback, the
    # listener has its own certificate or sits behind a TLS proxy (an https base_url).
    if not ocpi.base_url:
        raise ConfigError(
            f"config key ocpi.base_url must be set when ocpi.host ({ocpi.host}) is not loopback"
        )
    if not ocpi.cert_file and not ocpi.base_url.startswith("https://"):
        raise ConfigError(
            f"config key ocpi.host ({ocpi.host}) is not loopback: set ocpi.cert_file and "
            "ocpi.key_file, or an https ocpi.base_url for a TLS proxy in front"
        )


def is_loopback(host: str) -> bool:
    """True when host names the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
