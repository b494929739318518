"""Settings: config.toml plus CSMS_<SECTION>__<KEY> environment overrides, frozen once loaded."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csms.errors import ConfigError

ENV_PREFIX = "CSMS_"


@dataclass(frozen=True)
class OcppSettings:
    host: str = "0.0.0.0"
    port: int = 9000
    call_timeout: float = 30.0
    heartbeat_interval: int = 300
    allow_unknown_chargers: bool = True
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    command_queue_size: int = 16
    offline_grace: float = 600.0
    long_term_offline: float = 86400.0


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8180
    token: str = field(default="", repr=False)


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
    # Failed authentications per remote address and minute before csms answers 429.
    max_failed_auth: int = 10


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///./csms.db"


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
    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()


_SECTIONS: dict[str, type[Any]] = {
    "ocpp": OcppSettings,
    "api": ApiSettings,
    "mqtt": MqttSettings,
    "ocpi": OcpiSettings,
    "security": SecuritySettings,
    "database": DatabaseSettings,
    "log": LogSettings,
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
    if isinstance(value, _EnvText):
        return _parse_env(key, str(value), kind)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise ConfigError(
            f"config key {key} must be {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


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
        "ocpp.long_term_offline": settings.ocpp.long_term_offline,
        "mqtt.outbox_retention": settings.mqtt.outbox_retention,
        "ocpi.call_timeout": settings.ocpi.call_timeout,
        "ocpi.authorize_timeout": settings.ocpi.authorize_timeout,
        "ocpi.max_body_bytes": settings.ocpi.max_body_bytes,
        "ocpi.resync_interval": settings.ocpi.resync_interval,
        "ocpi.retry_max_delay": settings.ocpi.retry_max_delay,
    }
    for key, number in positive.items():
        if number <= 0:
            raise ConfigError(f"config key {key} must be positive, got {number}")
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
    if not settings.api.token and not is_loopback(settings.api.host):
        raise ConfigError(
            f"config key api.token must be set when api.host ({settings.api.host}) is not loopback"
        )


def _check_security(security: SecuritySettings) -> None:
    if security.client_cn not in _CLIENT_CN_RULES:
        raise ConfigError(
            f"config key security.client_cn must be one of {', '.join(_CLIENT_CN_RULES)}"
        )
    if not 0 <= security.min_profile <= 3:
        raise ConfigError("config key security.min_profile must be between 0 and 3")
    if security.certificate_days <= 0 or security.max_failed_auth <= 0:
        raise ConfigError(
            "config keys security.certificate_days and security.max_failed_auth must be positive"
        )
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
