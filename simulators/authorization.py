"""What the charger knows about id tags by itself: the Local Authorization List, the
Authorization Cache, and the offline rules that use them (OCPP 1.6 §3.5)."""

from __future__ import annotations

from typing import Any

from .clock import Clock
from .config import ConfigStore
from .smart import parse_time

__all__ = ["LocalAuthorization"]


class LocalAuthorization:
    """The local list and the cache, and what they say about a tag."""

    def __init__(self, config: ConfigStore) -> None:
        self._config = config
        self.local_list: dict[str, dict[str, Any]] = {}
        self.local_list_version = 0
        self.cache: dict[str, dict[str, Any]] = {}

    def status_of(self, id_tag: str, *, clock: Clock, now: float) -> str | None:
        """The tag's AuthorizationStatus from the list (first) or the cache; None if
        neither knows it."""
        config = self._config
        info = None
        if config.get_bool("LocalAuthListEnabled"):
            info = self.local_list.get(id_tag)
        if info is None and config.get_bool("AuthorizationCacheEnabled"):
            info = self.cache.get(id_tag)
        if info is None:
            return None
        status = str(info.get("status", "Invalid"))
        expiry = info.get("expiryDate")
        if status == "Accepted" and expiry:
            try:
                if parse_time(expiry) < clock.wall(now):
                    return "Expired"
            except ValueError:
                return "Invalid"
        return status

    def allows_offline(self, local_status: str | None) -> bool:
        """Whether a transaction may start while offline (LocalAuthorizeOffline,
        AllowOfflineTxForUnknownId)."""
        config = self._config
        if local_status == "Accepted" and config.get_bool("LocalAuthorizeOffline"):
            return True
        return local_status is None and config.get_bool("AllowOfflineTxForUnknownId")

    def pre_authorizes(self, local_status: str | None) -> bool:
        """Whether an online charger may start without asking (LocalPreAuthorize)."""
        return local_status == "Accepted" and self._config.get_bool("LocalPreAuthorize")

    def remember(self, id_tag: str, info: dict[str, Any]) -> None:
        """Cache an idTagInfo the central system sent (Authorize, Start/StopTransaction)."""
        if info and self._config.get_bool("AuthorizationCacheEnabled"):
            self.cache[id_tag] = info

    # -- handlers

    def send_local_list(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """SendLocalList, full or differential (OCPP 1.6 §5.15)."""
        config = self._config
        if not config.get_bool("LocalAuthListEnabled"):
            return {"status": "NotSupported"}
        entries = payload.get("localAuthorizationList", [])
        if len(entries) > config.get_int("SendLocalListMaxLength"):
            return {"status": "Failed"}
        version = payload["listVersion"]
        if payload["updateType"] == "Full":
            updated = {
                entry["idTag"]: entry["idTagInfo"] for entry in entries if "idTagInfo" in entry
            }
        else:
            if version <= self.local_list_version:
                return {"status": "VersionMismatch"}
            updated = dict(self.local_list)
            for entry in entries:
                if "idTagInfo" in entry:
                    updated[entry["idTag"]] = entry["idTagInfo"]
                else:
                    updated.pop(entry["idTag"], None)
        if len(updated) > config.get_int("LocalAuthListMaxLength"):
            return {"status": "Failed"}
        self.local_list = updated
        self.local_list_version = version
        return {"status": "Accepted"}

    def get_local_list_version(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """GetLocalListVersion: -1 when the list is disabled, 0 when it is empty."""
        if not self._config.get_bool("LocalAuthListEnabled"):
            return {"listVersion": -1}
        return {"listVersion": self.local_list_version if self.local_list else 0}

    def clear_cache(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """ClearCache."""
        self.cache.clear()
        return {"status": "Accepted"}
