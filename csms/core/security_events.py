"""Security events (SecWP §8, A04): who saw them, and which ones the whitepaper calls critical."""

from __future__ import annotations

from enum import StrEnum


class SecurityEventSource(StrEnum):
    """Who saw a security event."""

    CHARGER = "charger"  # SecurityEventNotification.req (SecWP A04)
    CSMS = "csms"  # csms itself, e.g. a refused connection attempt (SecWP A00.FR.408)


class SecurityEventType(StrEnum):
    """The security events SecWP §8 lists. Chargers may send others (type is string[50])."""

    FIRMWARE_UPDATED = "FirmwareUpdated"
    FAILED_TO_AUTHENTICATION_AT_CENTRAL_SYSTEM = "FailedToAuthenticationAtCentralSystem"
    CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATION = "CentralSystemFailedToAuthentication"
    SETTING_SYSTEM_TIME = "SettingSystemTime"
    STARTUP_OF_THE_DEVICE = "StartupOfTheDevice"
    RESET_OR_REBOOT = "ResetOrReboot"
    SECURITY_LOG_WAS_CLEARED = "SecurityLogWasCleared"
    RECONFIGURATION_OF_SECURITY_PARAMETERS = "ReconfigurationOfSecurityParameters"
    MEMORY_EXHAUSTION = "MemoryExhaustion"
    INVALID_MESSAGES = "InvalidMessages"
    ATTEMPTED_REPLAY_ATTACKS = "AttemptedReplayAttacks"
    TAMPER_DETECTION_ACTIVATED = "TamperDetectionActivated"
    INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
    INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
    INVALID_CENTRAL_SYSTEM_CERTIFICATE = "InvalidCentralSystemCertificate"
    INVALID_CHARGE_POINT_CERTIFICATE = "InvalidChargePointCertificate"
    INVALID_TLS_VERSION = "InvalidTLSVersion"
    INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"


class CsmsSecurityEventType(StrEnum):
    """Security events csms reports that SecWP §8 has no name for (type is string[50])."""

    # SecWP A02/A03: a SignCertificate CSR csms refused to sign (wrong CN or O, weak key...).
    CSR_REJECTED = "CsrRejected"


# SecWP §8, column "critical": the events a charger pushes at once (A04.FR.01).
CRITICAL = frozenset(
    {
        SecurityEventType.FIRMWARE_UPDATED,
        SecurityEventType.SETTING_SYSTEM_TIME,
        SecurityEventType.STARTUP_OF_THE_DEVICE,
        SecurityEventType.RESET_OR_REBOOT,
        SecurityEventType.SECURITY_LOG_WAS_CLEARED,
        SecurityEventType.MEMORY_EXHAUSTION,
        SecurityEventType.TAMPER_DETECTION_ACTIVATED,
    }
)


def is_critical(kind: str) -> bool:
    """Whether SecWP §8 marks this event type critical (unknown types are not)."""
    return kind in CRITICAL
