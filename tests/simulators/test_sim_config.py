"""The simulated charger's configuration key store."""

from __future__ import annotations

import pytest

from simulators.config import ConfigStatus, ConfigStore


@pytest.mark.parametrize(
    ("key", "value", "status", "stored"),
    [
        ("HeartbeatInterval", "60", ConfigStatus.accepted, "60"),
        ("HeartbeatInterval", " 120 ", ConfigStatus.accepted, "120"),
        ("HeartbeatInterval", "-5", ConfigStatus.rejected, "300"),
        ("HeartbeatInterval", "soon", ConfigStatus.rejected, "300"),
        ("AuthorizeRemoteTxRequests", "TRUE", ConfigStatus.accepted, "true"),
        ("AuthorizeRemoteTxRequests", "maybe", ConfigStatus.rejected, "false"),
        ("MeterValuesSampledData", "Power.Active.Import,SoC", ConfigStatus.accepted, None),
        ("MeterValuesSampledData", "Power.Active.Import,Bogus", ConfigStatus.rejected, None),
        ("NumberOfConnectors", "4", ConfigStatus.rejected, "2"),
        ("SimNetworkProfile", "lte", ConfigStatus.reboot_required, "lte"),
        ("NoSuchKey", "1", ConfigStatus.not_supported, None),
        ("LightIntensity", "101", ConfigStatus.rejected, "100"),
    ],
)
def test_change_configuration(
    key: str, value: str, status: ConfigStatus, stored: str | None
) -> None:
    """ChangeConfiguration answers per key type, read-only flag and range, and stores on success."""
    store = ConfigStore()
    assert store.change(key, value) is status
    if stored is not None:
        assert store.get(key) == stored


def test_initial_values_and_typed_getters() -> None:
    """Scenario start values override defaults; typed getters read them back."""
    store = ConfigStore({"HeartbeatInterval": 30, "LocalPreAuthorize": True})
    assert store.get_int("HeartbeatInterval") == 30
    assert store.get_bool("LocalPreAuthorize") is True
    assert store.get_list("MeterValuesSampledData") == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
    ]


@pytest.mark.parametrize(
    ("initial", "error"),
    [({"Bogus": 1}, KeyError), ({"HeartbeatInterval": "x"}, ValueError)],
)
def test_bad_initial_values_raise(initial: dict[str, object], error: type[Exception]) -> None:
    """Unknown keys and bad start values are refused when the store is built."""
    with pytest.raises(error):
        ConfigStore(initial)  # type: ignore[arg-type]


def test_report_known_and_unknown_keys() -> None:
    """GetConfiguration lists requested known keys with readonly flags and unknown ones apart."""
    report = ConfigStore().report(["HeartbeatInterval", "NumberOfConnectors", "Nope"])
    assert report == {
        "configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
            {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        ],
        "unknownKey": ["Nope"],
    }


def test_report_all_keys() -> None:
    """Without keys, every key is reported and none is unknown."""
    report = ConfigStore().report()
    assert "unknownKey" not in report
    keys = {entry["key"] for entry in report["configurationKey"]}  # type: ignore[index]
    assert {"HeartbeatInterval", "MeterValueSampleInterval", "TransactionMessageAttempts"} <= keys
