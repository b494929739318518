"""Configuration: config.toml, environment overrides, and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.config import load_settings
from csms.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "config.toml"


def test_shipped_config_has_the_contract_defaults() -> None:
    """The shipped config.toml loads and holds the contract's defaults."""
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
    """With a token, the API may listen beyond loopback."""
    settings = load_settings(None, environ={"CSMS_API__HOST": "0.0.0.0", "CSMS_API__TOKEN": "t"})
    assert settings.api.host == "0.0.0.0"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not ignored."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})


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
