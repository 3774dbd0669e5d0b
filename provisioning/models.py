"""Registry entities. Device ids are normalized MAC addresses (12 lower-case hex digits)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from provisioning.pseudonyms import is_pseudonym

_MAC_SEPARATORS = re.compile(r"[:\-.\s]")
_HEX12 = re.compile(r"^[0-9a-f]{12}$")
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_CREDENTIAL_REF = re.compile(r"^[A-Za-z0-9_.\-]*$")
# P8: troubleshooting windows are brief; no window may end further ahead than this.
MAX_DEBUG_WINDOW = timedelta(days=7)
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d{1,5}))?$")


class AccountStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    REVOKED = "revoked"


class Transport(StrEnum):
    SNMP = "snmp"
    MQTT = "mqtt"
    SIP = "sip"  # reports only (vq-rtcpxr PUBLISH); address: the phone's host


_AOR = re.compile(r"^(?:sips?:)?([^@\s;<>:]{1,64})@([A-Za-z0-9.\-]{1,253}|\[[0-9a-fA-F:]+\])$")


def normalize_aor(raw: str) -> str | None:
    """A SIP address of record as `user@host` (lower-case host, no scheme, port, parameters
    or display name), for matching a request's From against the registry; None when `raw`
    is not one."""
    text = raw.strip()
    if "<" in text:
        text = text[text.find("<") + 1 : text.find(">") if ">" in text else None]
    text = text.split(";", 1)[0].strip()
    if text.lower().startswith(("sip:", "sips:")):
        text = text.split(":", 1)[1]
    user, at, host = text.rpartition("@")
    if not at:
        return None
    if not host.startswith("["):
        host = host.split(":", 1)[0]
    match = _AOR.match(f"{user}@{host}")
    return None if match is None else f"{match.group(1)}@{match.group(2).lower()}"


def normalize_mac(raw: str) -> str:
    """Accept aa:bb:cc:dd:ee:ff, AA-BB-..., aabb.ccdd.eeff or bare hex; return bare lower hex."""
    mac = _MAC_SEPARATORS.sub("", raw.strip()).lower()
    if not _HEX12.match(mac):
        raise ValueError(f"not a MAC address: {raw!r} (want 12 hex digits, e.g. 00:0b:82:12:34:56)")
    if mac == "000000000000":
        raise ValueError(f"{raw!r} is the all-zero MAC address, not a device's address")
    if mac == "ffffffffffff":
        raise ValueError(f"{raw!r} is the broadcast MAC address, not a device's address")
    if int(mac[:2], 16) & 1:
        raise ValueError(
            f"{raw!r} is a multicast MAC address (lowest bit of the first octet set), not a device's address"
        )
    return mac


def check_account_id(raw: str) -> str:
    if not _ACCOUNT_ID.match(raw):
        raise ValueError(f"bad account id {raw!r}: 1-64 characters, letters, digits, '_', '.', '-'")
    if is_pseudonym(raw):
        raise ValueError(f"bad account id {raw!r}: ids of this shape are the pseudonyms of ended accounts")
    return raw


class Account(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    status: AccountStatus
    status_changed_at: datetime


class Device(BaseModel):
    """One provisioned device. `credentials` is a reference to a secret in config, never a secret."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(description="normalized MAC")
    account_id: str
    vendor: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=64)
    profile: str = Field(default="", max_length=64, description="empty: chosen by sysObjectID")
    transport: Transport
    address: str = Field(min_length=1, max_length=255, description="host[:port] or MQTT topic")
    credentials: str = Field(default="", max_length=64, description="name of a credential set")
    debug_until: datetime | None = None
    sip_aor: str = Field(
        default="",
        max_length=1024,
        description="SIP addresses of record the phone reports from, space-separated",
    )

    @field_validator("id", mode="before")
    @classmethod
    def _mac(cls, value: object) -> str:
        if not isinstance(value, str):
            raise ValueError("device id must be a string MAC address")
        return normalize_mac(value)

    @field_validator("account_id")
    @classmethod
    def _account(cls, value: str) -> str:
        return check_account_id(value)

    @field_validator("credentials")
    @classmethod
    def _credential_reference(cls, value: str) -> str:
        # Never echo the value: someone may have typed the secret itself here (P7).
        if not _CREDENTIAL_REF.match(value):
            raise ValueError(
                "credentials must be the name of a credential set in the config "
                "(letters, digits, '_', '.', '-'), not a secret"
            )
        return value

    @field_validator("sip_aor")
    @classmethod
    def _aors(cls, value: str) -> str:
        aors = []
        for raw in value.split():
            aor = normalize_aor(raw)
            if aor is None:
                raise ValueError(f"sip_aor {raw[:80]!r} is not a SIP address of record (sip:user@host)")
            aors.append(aor)
        return " ".join(aors)

    @field_validator("debug_until")
    @classmethod
    def _debug_window(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("debug_until must include a timezone, e.g. 2026-11-27T12:00:00Z")
        if value - datetime.now(UTC) > MAX_DEBUG_WINDOW:
            raise ValueError("debug_until is more than 7 days ahead; troubleshooting windows are brief (P8)")
        return value

    @model_validator(mode="after")
    def _address_fits_transport(self) -> Device:
        if self.transport is Transport.SNMP:
            match = _HOST_PORT.match(self.address)
            if not match:
                raise ValueError(f"snmp address {self.address!r} is not host[:port]")
            port = match.group("port")
            if port is not None and not 0 < int(port) < 65536:
                raise ValueError(f"snmp address {self.address!r} has port out of range")
        elif self.transport is Transport.SIP:
            if not _HOST_PORT.match(self.address):
                raise ValueError(f"sip address {self.address!r} is not the phone's host")
        elif any(ch in self.address for ch in "+#") or self.address.startswith("$"):
            raise ValueError(f"mqtt topic {self.address!r} must be a plain topic, no wildcards")
        return self

    def snmp_endpoint(self, default_port: int = 161) -> tuple[str, int]:
        match = _HOST_PORT.match(self.address)
        assert match is not None  # validated at construction
        host = match.group("host").strip("[]")
        port = match.group("port")
        return host, int(port) if port else default_port
