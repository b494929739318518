"""Firmware and diagnostics: UpdateFirmware and GetDiagnostics (OCPP 1.6 §4.4, §5.9), and
their Security Whitepaper forms SignedUpdateFirmware and GetLog (SecWP L01, N01).

Downloads and uploads are pretend: a location with ``://`` works, anything else fails.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Protocol

# OCPP 1.6 §7 DiagnosticsStatus, as the ocpp package has it. The firmware statuses stay
# ours: the package folds the core and the Security Whitepaper's into one enum, and a
# FirmwareStatusNotification may carry the core ones only.
from ocpp.v16.enums import DiagnosticsStatus

from .model import CloseMode
from .security import is_base64_signature, is_pem_certificate
from .services import Services
from .smart import parse_time
from .timers import Timer

__all__ = [
    "Diagnostics",
    "DiagnosticsStatus",
    "FirmwareServices",
    "FirmwareStatus",
    "FirmwareUpdates",
    "LogStatus",
    "SignedFirmwareStatus",
    "firmware_version_from",
]

# Simulated seconds each step takes.
DOWNLOAD_TIME: Final = 10.0
VERIFY_TIME: Final = 1.0
INSTALL_TIME: Final = 5.0
UPLOAD_TIME: Final = 5.0
REBOOT_PAUSE: Final = 2.0  # from Downloaded to Installing
BUSY_RETRY: Final = 60.0  # installs wait for the connectors to be idle, checked this often


class FirmwareStatus(StrEnum):
    """FirmwareStatusNotification status."""

    IDLE = "Idle"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    INSTALLING = "Installing"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"


class LogStatus(StrEnum):
    """LogStatusNotification status (UploadLogStatusEnumType, SecWP §6.19)."""

    IDLE = "Idle"
    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILURE = "UploadFailure"


class SignedFirmwareStatus(StrEnum):
    """SignedFirmwareStatusNotification status (FirmwareStatusEnumType, SecWP §6.8)."""

    IDLE = "Idle"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INVALID_SIGNATURE = "InvalidSignature"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALLED = "Installed"


# SignedFirmwareStatusNotification states after which the update is over.
_SIGNED_FIRMWARE_ENDS: Final = frozenset(
    {
        SignedFirmwareStatus.IDLE,
        SignedFirmwareStatus.DOWNLOAD_FAILED,
        SignedFirmwareStatus.INVALID_SIGNATURE,
        SignedFirmwareStatus.INSTALLED,
    }
)


def firmware_version_from(location: str, current: str) -> str:
    """The version a firmware file brings: its name without extension (``sim-2.0.0.bin``
    gives ``sim-2.0.0``), or the current version with ``-new``."""
    name = location.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".bin", ".img", ".tar.gz", ".zip", ".fw"):
        name = name.removesuffix(suffix)
    name = name.strip()
    return (name or f"{current}-new")[:50]


def _can_transfer(location: str) -> bool:
    return "://" in location


class FirmwareServices(Services, Protocol):
    """What firmware updates need besides the common services."""

    @property
    def charging(self) -> int:
        """Connectors with a running transaction (installs wait for none)."""
        ...

    def reboot(self, now: float, mode: CloseMode) -> None:
        """Close the connection and come back up (with the new firmware)."""
        ...

    def security_event(self, kind: str, now: float, tech_info: str = "") -> None:
        """SecurityEventNotification."""
        ...


class FirmwareUpdates:
    """The installed firmware version and the update in progress, plain or signed."""

    def __init__(self, services: FirmwareServices, *, version: str) -> None:
        self._services = services
        self.version = version
        self.status = FirmwareStatus.IDLE
        self._location = ""
        self.signed_status = SignedFirmwareStatus.IDLE
        self._signed_request_id: int | None = None
        self._signed_firmware: dict[str, Any] = {}
        services.timers.handle(Timer.FIRMWARE_STEP, self._firmware_step)
        services.timers.handle(Timer.SIGNED_FIRMWARE_STEP, self._signed_firmware_step)

    # -- UpdateFirmware (OCPP 1.6 §5.19)

    def update_firmware(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """UpdateFirmware: download at retrieveDate, install when idle, reboot."""
        services = self._services
        self._location = payload["location"]
        try:
            at = services.clock.real_at_wall(parse_time(payload["retrieveDate"]))
        except ValueError:
            at = now
        self.status = FirmwareStatus.IDLE
        services.timers.start(Timer.FIRMWARE_STEP, max(at, now))
        return {}

    def _firmware_step(self, _connector_id: int, now: float) -> None:
        services = self._services
        clock, timers = services.clock, services.timers
        status = self.status
        if status is FirmwareStatus.DOWNLOADING:
            self._report(FirmwareStatus.DOWNLOADED)
            timers.start(Timer.FIRMWARE_STEP, clock.after(now, REBOOT_PAUSE))
        elif status is FirmwareStatus.DOWNLOADED:
            if services.charging:
                timers.start(Timer.FIRMWARE_STEP, clock.after(now, BUSY_RETRY))
                return
            self._report(FirmwareStatus.INSTALLING)
            timers.start(Timer.FIRMWARE_STEP, clock.after(now, INSTALL_TIME))
        elif status is FirmwareStatus.INSTALLING:
            self.version = firmware_version_from(self._location, self.version)
            services.reboot(now, CloseMode.GRACEFUL)  # Installed follows the next boot
        elif not _can_transfer(self._location):
            self._report(FirmwareStatus.DOWNLOAD_FAILED)
            self.status = FirmwareStatus.IDLE
        else:
            self._report(FirmwareStatus.DOWNLOADING)
            timers.start(Timer.FIRMWARE_STEP, clock.after(now, DOWNLOAD_TIME))

    def rebooted(self) -> None:
        """BootNotification was accepted after a restart: an install that was under way
        is done."""
        if self.status is FirmwareStatus.INSTALLING:
            self._report(FirmwareStatus.INSTALLED)
            self.status = FirmwareStatus.IDLE

    def _report(self, status: FirmwareStatus) -> None:
        self.status = status
        self.notify()

    def notify(self) -> None:
        """FirmwareStatusNotification with the current status."""
        self._services.send_call("FirmwareStatusNotification", {"status": self.status.value})

    # -- SignedUpdateFirmware (SecWP L01)

    def signed_update_firmware(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """SignedUpdateFirmware: check the signing certificate, then download, verify and
        install on the schedule given."""
        services = self._services
        firmware = payload["firmware"]
        if not is_pem_certificate(firmware["signingCertificate"]):
            # SecWP L01.FR.23/24 and L01.FR.02.
            services.after_reply(
                lambda later: services.security_event("InvalidFirmwareSigningCertificate", later)
            )
            return {"status": "InvalidCertificate"}
        # SecWP L01.FR.26: a new request cancels the update in progress.
        canceled = self._signed_request_id is not None
        self._signed_request_id = payload["requestId"]
        self._signed_firmware = firmware
        self.signed_status = SignedFirmwareStatus.IDLE
        try:
            at = max(now, services.clock.real_at_wall(parse_time(firmware["retrieveDateTime"])))
        except ValueError:
            at = now
        if at > now:
            # SecWP L01.FR.13.
            services.after_reply(
                lambda later: self._report_signed(SignedFirmwareStatus.DOWNLOAD_SCHEDULED)
            )
        services.timers.start(Timer.SIGNED_FIRMWARE_STEP, at)
        return {"status": "AcceptedCanceled" if canceled else "Accepted"}

    def _signed_firmware_step(self, _connector_id: int, now: float) -> None:
        services = self._services
        clock, timers = services.clock, services.timers
        firmware = self._signed_firmware
        status = self.signed_status
        step = SignedFirmwareStatus
        if status in (step.IDLE, step.DOWNLOAD_SCHEDULED):
            if not _can_transfer(firmware["location"]):
                self._report_signed(step.DOWNLOAD_FAILED)
                return
            self._report_signed(step.DOWNLOADING)
            timers.start(Timer.SIGNED_FIRMWARE_STEP, clock.after(now, DOWNLOAD_TIME))
        elif status is step.DOWNLOADING:
            self._report_signed(step.DOWNLOADED)
            timers.start(Timer.SIGNED_FIRMWARE_STEP, clock.after(now, VERIFY_TIME))
        elif status is step.DOWNLOADED:
            if not is_base64_signature(firmware["signature"]):
                # SecWP L01.FR.03.
                self._report_signed(step.INVALID_SIGNATURE)
                services.security_event("InvalidFirmwareSignature", now)
                return
            self._report_signed(step.SIGNATURE_VERIFIED)
            timers.start(Timer.SIGNED_FIRMWARE_STEP, clock.after(now, VERIFY_TIME))
        elif status in (step.SIGNATURE_VERIFIED, step.INSTALL_SCHEDULED):
            install_at = now
            if "installDateTime" in firmware:
                try:
                    install_at = clock.real_at_wall(parse_time(firmware["installDateTime"]))
                except ValueError:
                    install_at = now
            if install_at > now:
                if status is not step.INSTALL_SCHEDULED:
                    self._report_signed(step.INSTALL_SCHEDULED)  # L01.FR.16
                timers.start(Timer.SIGNED_FIRMWARE_STEP, install_at)
            elif services.charging:
                # L01.FR.06: install when idle
                timers.start(Timer.SIGNED_FIRMWARE_STEP, clock.after(now, BUSY_RETRY))
            else:
                self._report_signed(step.INSTALLING)
                timers.start(Timer.SIGNED_FIRMWARE_STEP, clock.after(now, INSTALL_TIME))
        elif status is step.INSTALLING:
            # Installed without a reboot: the simulator has no bootloader to restart into.
            self.version = firmware_version_from(firmware["location"], self.version)
            self._report_signed(step.INSTALLED)
            services.security_event("FirmwareUpdated", now, self.version)

    def _report_signed(self, status: SignedFirmwareStatus) -> None:
        self.signed_status = status  # SecWP L01.FR.01: every new state is reported
        self.notify_signed()
        if status in _SIGNED_FIRMWARE_ENDS:
            self._signed_request_id = None

    def notify_signed(self, *, triggered: bool = False) -> None:
        """SignedFirmwareStatusNotification with the current status."""
        status = self.signed_status
        if triggered and status is SignedFirmwareStatus.INSTALLED:
            status = SignedFirmwareStatus.IDLE  # SecWP L01.FR.28
        payload: dict[str, Any] = {"status": status.value}
        if self._signed_request_id is not None:  # SecWP L01.FR.10/21
            payload["requestId"] = self._signed_request_id
        self._services.send_call("SignedFirmwareStatusNotification", payload)


class Diagnostics:
    """Diagnostics and log uploads (GetDiagnostics, GetLog)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self.status = DiagnosticsStatus.idle
        self._diagnostics_location_ok = True
        self.log_status = LogStatus.IDLE
        self._log_request_id: int | None = None
        self._log_location_ok = True
        services.timers.handle(Timer.DIAGNOSTICS_UPLOAD, self._diagnostics_uploaded)
        services.timers.handle(Timer.LOG_UPLOAD, self._log_uploaded)

    def _file_name(self, kind: str, now: float) -> str:
        stamp = self._services.clock.stamp(now).replace(":", "").replace("-", "")[:15]
        return f"{kind}-{self._services.identity}-{stamp}.log"[:255]

    # -- GetDiagnostics (OCPP 1.6 §5.9)

    def get_diagnostics(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """GetDiagnostics: name the file, then Uploading and Uploaded (or UploadFailed)."""
        services = self._services
        self._diagnostics_location_ok = _can_transfer(payload["location"])
        name = self._file_name("diagnostics", now)

        def upload(later: float) -> None:
            self.status = DiagnosticsStatus.uploading
            self.notify()
            services.timers.start(
                Timer.DIAGNOSTICS_UPLOAD, services.clock.after(later, UPLOAD_TIME)
            )

        services.after_reply(upload)
        return {"fileName": name}

    def _diagnostics_uploaded(self, _connector_id: int, now: float) -> None:
        self.status = (
            DiagnosticsStatus.uploaded
            if self._diagnostics_location_ok
            else DiagnosticsStatus.upload_failed
        )
        self.notify()
        self.status = DiagnosticsStatus.idle

    def notify(self) -> None:
        """DiagnosticsStatusNotification with the current status."""
        self._services.send_call("DiagnosticsStatusNotification", {"status": self.status.value})

    # -- GetLog (SecWP N01)

    def get_log(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """GetLog: name the file, then Uploading and Uploaded (or UploadFailure)."""
        services = self._services
        # SecWP N01.FR.11: a new request cancels the upload in progress.
        canceled = self._log_request_id is not None
        services.timers.cancel(Timer.LOG_UPLOAD)
        self._log_request_id = payload["requestId"]
        self._log_location_ok = _can_transfer(payload["log"]["remoteLocation"])
        name = self._file_name(payload["logType"], now)

        def upload(later: float) -> None:
            self.log_status = LogStatus.UPLOADING  # N01.FR.08
            self.notify_log()
            services.timers.start(Timer.LOG_UPLOAD, services.clock.after(later, UPLOAD_TIME))

        services.after_reply(upload)
        return {"status": "AcceptedCanceled" if canceled else "Accepted", "filename": name}

    def _log_uploaded(self, _connector_id: int, now: float) -> None:
        # SecWP N01.FR.09/10: Uploaded, or why not.
        self.log_status = LogStatus.UPLOADED if self._log_location_ok else LogStatus.UPLOAD_FAILURE
        self.notify_log()
        self.log_status = LogStatus.IDLE
        self._log_request_id = None

    def notify_log(self) -> None:
        """LogStatusNotification with the current status."""
        payload: dict[str, Any] = {"status": self.log_status.value}
        if self._log_request_id is not None:  # SecWP N01.FR.07/12
            payload["requestId"] = self._log_request_id
        self._services.send_call("LogStatusNotification", payload)
