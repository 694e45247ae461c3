"""The one exception tree vitaledge raises on purpose (STYLE: drivers/ and edge/)."""

from __future__ import annotations

import enum

__all__ = [
    "ConfigError",
    "DecodeError",
    "PublishError",
    "SourceError",
    "SourceUnavailableError",
    "UnavailableReason",
    "VitalEdgeError",
]


class VitalEdgeError(Exception):
    """Root of every error vitaledge raises on purpose."""


class ConfigError(VitalEdgeError):
    """The configuration file or environment is invalid; the message names file, key path and reason."""


class SourceError(VitalEdgeError):
    """A source failed; ``source`` is its configured name."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class UnavailableReason(enum.Enum):
    """Why a source could not be opened; every reason is retried with backoff."""

    ABSENT = "absent"  # no such device / file / peripheral in range
    PERMISSION = "permission"  # exists but we may not open it (udev rule, group)
    BUSY = "busy"  # another process holds it
    DISCONNECTED = "disconnected"  # was open, went away


class SourceUnavailableError(SourceError):
    """The device is absent, not permitted or busy: the supervisor retries with backoff."""

    def __init__(self, source: str, message: str, reason: UnavailableReason) -> None:
        super().__init__(source, message)
        self.reason = reason


class DecodeError(SourceError):
    """One bad frame, packet or line: counted, skipped, never fatal."""

    def __init__(self, source: str, message: str, kind: str = "decode") -> None:
        super().__init__(source, message)
        self.kind = kind  # short label for counting ("crc", "truncated", "nan", ...)


class PublishError(VitalEdgeError):
    """The broker refused or timed out: the record stays in the outbox."""
