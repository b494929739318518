"""Configuration: config.toml, environment overrides, and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.config import LeniencyRule, OcppSettings, load_settings
from csms.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "config.toml"


def test_shipped_config_has_the_contract_defaults() -> None:
    """The shipped config.toml loads and holds the documented defaults."""
    settings = load_settings(SHIPPED, environ={})
    assert (settings.ocpp.host, settings.ocpp.port) == ("0.0.0.0", 9000)
    assert settings.ocpp.call_timeout == 30
    assert settings.ocpp.heartbeat_interval == 300
    assert settings.ocpp.allow_unknown_chargers is True
    assert (settings.api.host, settings.api.port, settings.api.token) == ("127.0.0.1", 8180, "")
    assert settings.mqtt.url == "mqtt://127.0.0.1:1883"
    assert settings.mqtt.topic_prefix == "csms"
    assert settings.mqtt.embedded is True
    assert settings.database.url == "sqlite+aiosqlite:///./csms.db"
    assert (settings.log.level, settings.log.format) == ("info", "json")


def test_environment_overrides_every_kind_of_key() -> None:
    """CSMS_<SECTION>__<KEY> overrides ints, floats, booleans and strings."""
    settings = load_settings(
        SHIPPED,
        environ={
            "CSMS_OCPP__PORT": "9100",
            "CSMS_OCPP__CALL_TIMEOUT": "2.5",
            "CSMS_MQTT__EMBEDDED": "false",
            "CSMS_API__TOKEN": "s3cret",
            "CSMS_LOG__FORMAT": "console",
            "OTHER_VAR": "ignored",
        },
    )
    assert settings.ocpp.port == 9100
    assert settings.ocpp.call_timeout == 2.5
    assert settings.mqtt.embedded is False
    assert settings.api.token == "s3cret"
    assert settings.log.format == "console"


def test_no_file_means_defaults() -> None:
    """Without a file the built-in defaults apply."""
    assert load_settings(None, environ={}).ocpp.port == 9000


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        ("[ocpp]\nprot = 1\n", {}, "unknown config key ocpp.prot"),
        ("[ocp]\nport = 1\n", {}, "unknown config section [ocp]"),
        ('[ocpp]\nport = "9000"\n', {}, "config key ocpp.port must be int"),
        ("[ocpp]\nallow_unknown_chargers = 1\n", {}, "ocpp.allow_unknown_chargers must be bool"),
        ("", {"CSMS_OCPP__PORT": "nine"}, "config key ocpp.port must be int"),
        ("", {"CSMS_MQTT__EMBEDDED": "maybe"}, "mqtt.embedded must be a boolean"),
        ("", {"CSMS_OCPP__NOPE": "1"}, "unknown config key ocpp.nope"),
        ("", {"CSMS_NOPE__PORT": "1"}, "unknown config section"),
        ("[ocpp]\nport = 70000\n", {}, "ocpp.port must be between 0 and 65535"),
        ("[ocpp]\ncall_timeout = 0\n", {}, "ocpp.call_timeout must be positive"),
        ('[log]\nformat = "xml"\n', {}, "log.format must be one of"),
        ('[database]\nurl = "mysql://x"\n', {}, "database.url must start with"),
        ('[api]\nhost = "0.0.0.0"\n', {}, "api.token must be set"),
        ("[ocpp\n", {}, "not valid TOML"),
        ('[ocpp]\nunknown_chargers = "maybe"\n', {}, "ocpp.unknown_chargers must be one of"),
        ("[ocpp]\nmax_frame_size = 0\n", {}, "ocpp.max_frame_size must be positive"),
        ('[security]\npassword_pepper = "short"\n', {}, "password_pepper must have 32"),
        ("[security]\nmax_failed_auth_per_address = 0\n", {}, "must be positive"),
        ("[ocpp]\nleniency = 1\n", {}, "ocpp.leniency must be a list of tables"),
        (
            '[[ocpp.leniency]]\nnormalise = ["guessing"]\n',
            {},
            "ocpp.leniency[0].normalise has unknown deviations guessing",
        ),
        (
            '[[ocpp.leniency]]\nnormalise = ["naive_timestamps"]\n',
            {},
            "ocpp.leniency[0].timezone goes with naive_timestamps",
        ),
        (
            '[[ocpp.leniency]]\nnormalise = ["naive_timestamps"]\ntimezone = "Mars/Olympus"\n',
            {},
            "is not an IANA time zone",
        ),
        ('[[ocpp.leniency]]\nvendr = "x"\n', {}, "unknown config key ocpp.leniency[0].vendr"),
        ("", {"CSMS_OCPP__LENIENCY": "[{"}, "ocpp.leniency must be a JSON list of objects"),
        ("", {"CSMS_OCPP__TRANSPORT": "aiohttp"}, "ocpp.transport must be one of auto, "),
    ],
)
def test_bad_configuration_names_the_key(
    tmp_path: Path, toml: str, environ: dict[str, str], message: str
) -> None:
    """A wrong type, unknown key or bad value is a start-up error that names the key."""
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(path, environ=environ)


def test_token_allows_non_loopback_api() -> None:
    """With a token of 16 characters or more, the API may listen beyond loopback."""
    token = "t" * 16
    settings = load_settings(None, environ={"CSMS_API__HOST": "0.0.0.0", "CSMS_API__TOKEN": token})
    assert settings.api.host == "0.0.0.0"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not ignored."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_shipped_config_is_strict_except_for_its_named_chargers() -> None:
    """Hardening defaults: 1 MiB frames, a 60 s silence grace, Pending retries after 300 s,
    per-address throttling at 1000, no pepper in the file, one shipped leniency rule."""
    settings = load_settings(SHIPPED, environ={})
    ocpp = settings.ocpp
    assert ocpp.max_frame_size == 1024 * 1024
    assert (ocpp.heartbeat_grace, ocpp.pending_interval) == (60, 300)
    assert ocpp.unknown_charger_policy == "accept"
    assert settings.security.max_failed_auth_per_address == 1000
    assert settings.security.password_pepper == ""
    assert ocpp.leniency == (
        LeniencyRule(vendor="Schneider Electric", model="EVlink*", normalise=("long_strings",)),
    )
    assert OcppSettings().leniency == ()  # strict unless configured


@pytest.mark.parametrize(
    ("environ", "policy"),
    [
        ({}, "accept"),
        ({"CSMS_OCPP__ALLOW_UNKNOWN_CHARGERS": "false"}, "reject"),
        ({"CSMS_OCPP__UNKNOWN_CHARGERS": "pending"}, "pending"),
        (
            {"CSMS_OCPP__ALLOW_UNKNOWN_CHARGERS": "false", "CSMS_OCPP__UNKNOWN_CHARGERS": "accept"},
            "accept",
        ),
    ],
)
def test_unknown_chargers_and_its_deprecated_alias(environ: dict[str, str], policy: str) -> None:
    """unknown_chargers wins; left empty, allow_unknown_chargers true/false means accept/reject."""
    assert load_settings(None, environ=environ).ocpp.unknown_charger_policy == policy


def test_leniency_rules_from_the_environment() -> None:
    """CSMS_OCPP__LENIENCY takes the rules as a JSON list."""
    environ = {
        "CSMS_OCPP__LENIENCY": '[{"vendor": "Growatt", "normalise": ["naive_timestamps"],'
        ' "timezone": "Europe/Berlin"}]'
    }
    (rule,) = load_settings(None, environ=environ).ocpp.leniency
    assert rule == LeniencyRule(
        vendor="Growatt", model="*", normalise=("naive_timestamps",), timezone="Europe/Berlin"
    )


def test_the_pepper_is_never_shown() -> None:
    """password_pepper is a secret: not in the settings' repr."""
    pepper = "p" * 40
    settings = load_settings(None, environ={"CSMS_SECURITY__PASSWORD_PEPPER": pepper})
    assert settings.security.password_pepper == pepper
    assert pepper not in repr(settings)


def test_webhook_settings_come_from_the_file_and_the_environment() -> None:
    """[webhooks]: private targets refused by default, the shipped schedule, env overrides."""
    shipped = load_settings(SHIPPED, environ={}).webhooks
    assert shipped.allow_private_targets is False
    assert shipped.retry_delays() == (5, 30, 120, 600, 3600, 21600, 43200)
    changed = load_settings(
        SHIPPED,
        environ={
            "CSMS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
            "CSMS_WEBHOOKS__RETRY_SCHEDULE": "100ms, 1s",
        },
    ).webhooks
    assert changed.allow_private_targets is True
    assert changed.retry_delays() == (0.1, 1.0)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CSMS_WEBHOOKS__RETRY_SCHEDULE": "soon"}, "webhooks.retry_schedule"),
        ({"CSMS_WEBHOOKS__MAX_IN_FLIGHT": "0"}, "webhooks.max_in_flight"),
        ({"CSMS_WEBHOOKS__ROTATION_OVERLAP": "-1"}, "webhooks.rotation_overlap"),
    ],
)
def test_bad_webhook_settings_name_the_key(environ: dict[str, str], message: str) -> None:
    """A bad schedule or bound stops start-up with the key's name."""
    with pytest.raises(ConfigError, match=message):
        load_settings(None, environ=environ)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CSMS_OCPI__PORT": "70000"}, "ocpi.port must be between 0 and 65535"),
        ({"CSMS_OCPI__CERT_FILE": "c.pem"}, "ocpi.cert_file and ocpi.key_file go together"),
        ({"CSMS_OCPI__BASE_URL": "ftp://x"}, "ocpi.base_url must be an http"),
        ({"CSMS_OCPI__AUTHORIZE_TIMEOUT": "0"}, "ocpi.authorize_timeout must be positive"),
        (
            {"CSMS_OCPI__PORT": "8190", "CSMS_OCPI__HOST": "0.0.0.0"},
            "ocpi.base_url must be set when ocpi.host",
        ),
        (
            {
                "CSMS_OCPI__PORT": "8190",
                "CSMS_OCPI__HOST": "0.0.0.0",
                "CSMS_OCPI__BASE_URL": "http://ocpi.example.com",
            },
            "set ocpi.cert_file and ocpi.key_file, or an https ocpi.base_url",
        ),
    ],
)
def test_bad_ocpi_listener_settings(environ: dict[str, str], message: str) -> None:
    """The OCPI listener off loopback needs a base_url and TLS (its own, or a proxy's)."""
    with pytest.raises(ConfigError, match=message):
        load_settings(None, environ=environ)


def test_ocpi_listener_behind_a_tls_proxy() -> None:
    """An https base_url lets the listener bind beyond loopback without its own certificate."""
    settings = load_settings(
        None,
        environ={
            "CSMS_OCPI__PORT": "8190",
            "CSMS_OCPI__HOST": "0.0.0.0",
            "CSMS_OCPI__BASE_URL": "https://ocpi.example.com/cpo",
        },
    )
    assert (settings.ocpi.port, settings.ocpi.base_url) == (8190, "https://ocpi.example.com/cpo")
