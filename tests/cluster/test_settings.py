"""[cluster] settings: PostgreSQL only, sane leases, overridable from the environment."""

from __future__ import annotations

import pytest

from csms.config import load_settings
from csms.errors import ConfigError

PG = "postgresql+asyncpg://postgres@127.0.0.1/csms"


def test_cluster_mode_is_off_by_default() -> None:
    """A standalone node (SQLite) needs no [cluster] section."""
    assert load_settings(environ={}).cluster.enabled is False


def test_cluster_keys_come_from_the_environment() -> None:
    """CSMS_CLUSTER__* override the file, as for every section."""
    settings = load_settings(
        environ={
            "CSMS_DATABASE__URL": PG,
            "CSMS_CLUSTER__ENABLED": "true",
            "CSMS_CLUSTER__NODE_ID": "n7",
            "CSMS_CLUSTER__PARTITIONS": "32",
        }
    )
    assert settings.cluster.enabled is True
    assert settings.cluster.node == "n7"
    assert settings.cluster.partitions == 32


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "needs a postgresql"),
        ({"CSMS_DATABASE__URL": PG, "CSMS_CLUSTER__PARTITIONS": "0"}, "partitions"),
        ({"CSMS_DATABASE__URL": PG, "CSMS_CLUSTER__LEASE_SECONDS": "3"}, "twice"),
        ({"CSMS_DATABASE__URL": PG, "CSMS_CLUSTER__NODE_ID": "a b"}, "node_id"),
        ({"CSMS_DATABASE__URL": PG, "CSMS_CLUSTER__MQTT_INFLIGHT": "0"}, "mqtt_inflight"),
    ],
)
def test_bad_cluster_settings_are_refused(environ: dict[str, str], message: str) -> None:
    """Cluster mode on SQLite, no partitions, a lease shorter than two heartbeats, a bad
    node id or no in-flight window: a clear error at start-up."""
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={"CSMS_CLUSTER__ENABLED": "true", **environ})
