"""One exception root for hookflash and the few kinds that carry what went wrong, where.

Each carries data (the file, the device, the source, the reason), so that the intake can
quarantine an item with its reason, a sink's failure can be retried as the server asked,
and the CLI can print one line that names what is wrong and where.
"""

from __future__ import annotations


class HookflashError(Exception):
    """The root: everything hookflash raises on purpose derives from it."""


class ConfigError(HookflashError, ValueError):
    """The config is invalid; the message names the file and the key."""


class ProfileError(HookflashError, ValueError):
    """A device profile is invalid or missing; the message names the file and the key."""


class PolicyError(HookflashError, ValueError):
    """The retention policy is invalid; the message names the file and the key."""


class Rejected(HookflashError, ValueError):
    """An item received from a device cannot become a record; `reason` says why, for the
    quarantine (bad JSON, a value out of its type, a contradicting device id, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConversionError(Rejected):
    """A raw value does not fit its field spec; the reason names the field and why."""


class SourceError(HookflashError):
    """A source could not get data from a device (timeout, agent error, missing credential).
    Never carries a secret."""


class NotErasedHere(HookflashError):
    """A store that erases nothing itself, by configuration: its own retention bounds the
    data. The message says so; the receipt carries it."""


class SinkError(HookflashError):
    """A sink refused or failed a write. `status` is the server's answer (HTTP), if any;
    `retry_after_s` what it asked for before the next attempt."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class RegistryConflict(HookflashError):
    """The service's registry is not one it may start on (another collector runs on the
    same database, or the data dir's own registry would be silently left behind)."""


class UnknownDevice(HookflashError, LookupError):
    """The device does not exist, or belongs to another account."""
