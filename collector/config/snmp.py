"""SNMP settings and credential sets. Secrets come from the config as SecretStr or, better,
from environment variables named in it; resolved values never appear in a repr."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.config.sip import parse_listen
from collector.core.errors import ConfigError
from collector.core.records import Kind

AuthProtocol = Literal["SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "MD5"]
PrivProtocol = Literal["AES-128", "AES-192", "AES-256", "DES"]


def from_env(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"{what} names environment variable {variable}, which is not set")
    return value


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnmpConfig(_Section):
    enabled: bool = True
    interval_s: float = Field(default=60.0, gt=0, description="for kinds not listed in intervals")
    # Per-kind intervals, e.g. {inventory = 3600, firmware = 3600, call_quality = 60}.
    intervals: dict[str, float] = {}
    timeout_s: float = Field(default=2.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    deadline_s: float = Field(default=0, ge=0, description="whole poll of one device; 0: derived")
    max_in_flight: int = Field(default=256, ge=1)
    tick_s: float = Field(default=0.05, gt=0, le=1)
    down_after: int = Field(default=2, ge=1, description="consecutive failures before 'down'")
    max_backoff_s: float = Field(default=900, gt=0, description="cap for unreachable devices")
    # "fast": hookflash's own v2c codec on one shared socket; "pysnmp": pysnmp's engine.
    # SNMPv3 always goes through pysnmp (USM, engine discovery).
    engine: Literal["fast", "pysnmp"] = "fast"

    @field_validator("intervals")
    @classmethod
    def _known_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        known = {k.value for k in Kind}
        for kind, seconds in value.items():
            if kind not in known:
                raise ValueError(f"unknown record kind {kind!r}; known: {', '.join(sorted(known))}")
            if seconds <= 0:
                raise ValueError(f"interval for {kind} must be positive")
        return value

    def interval_for(self, kind: Kind) -> float:
        return self.intervals.get(kind.value, self.interval_s)

    @property
    def poll_deadline_s(self) -> float:
        return self.deadline_s or 2 * self.timeout_s * (self.retries + 1) + 1


class SnmpCredential(_Section):
    """`version = "v2c"` with a community, or `version = "v3"` with a USM user."""

    version: Literal["v2c", "v3"] = "v2c"
    community: SecretStr | None = None
    community_env: str = ""
    user: str = ""
    auth_protocol: AuthProtocol = "SHA"
    auth_key_env: str = ""
    priv_protocol: PrivProtocol | None = None
    priv_key_env: str = ""

    @model_validator(mode="after")
    def _complete(self) -> SnmpCredential:
        if self.version == "v2c":
            if (self.community is None) == (not self.community_env):
                raise ValueError("v2c: give exactly one of community or community_env")
            return self
        if not self.user or not self.auth_key_env:
            raise ValueError("v3: user and auth_key_env are required (authNoPriv or authPriv)")
        if (self.priv_protocol is None) != (not self.priv_key_env):
            raise ValueError("v3: priv_protocol and priv_key_env go together (authPriv)")
        return self

    def resolved(self, name: str) -> ResolvedCredential:
        where = f"credentials.{name}"
        if self.version == "v2c":
            community = (
                from_env(self.community_env, f"{where}.community_env")
                if self.community_env
                else self.community.get_secret_value()
                if self.community
                else ""
            )
            return ResolvedCredential(name=name, version="v2c", community=community)
        return ResolvedCredential(
            name=name,
            version="v3",
            user=self.user,
            auth_protocol=self.auth_protocol,
            auth_key=from_env(self.auth_key_env, f"{where}.auth_key_env"),
            priv_protocol=self.priv_protocol,
            priv_key=from_env(self.priv_key_env, f"{where}.priv_key_env") if self.priv_key_env else "",
        )


@dataclass(frozen=True)
class ResolvedCredential:
    name: str
    version: Literal["v2c", "v3"]
    community: str = field(default="", repr=False)
    user: str = ""
    auth_protocol: AuthProtocol = "SHA"
    auth_key: str = field(default="", repr=False)
    priv_protocol: PrivProtocol | None = None
    priv_key: str = field(default="", repr=False)

    @property
    def security_level(self) -> str:
        if self.version == "v2c":
            return "community"
        return "authPriv" if self.priv_protocol else "authNoPriv"


class TrapConfig(_Section):
    """`[snmp_traps]`: a listener for v2c and v3 traps and informs. 162 needs privileges:
    the default is an unprivileged port (README: how to redirect 162 to it)."""

    enabled: bool = False
    listen: str = "127.0.0.1:10162"
    # The credential sets taken (names in `credentials`; empty: every set): v2c sets give the
    # communities, v3 sets the USM users. Anything else is dropped and counted.
    # `communities_from` is the name this key had before v3 was taken.
    credentials_from: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("credentials_from", "communities_from")
    )
    # This listener's SNMPv3 engine ID, in hex (the one senders of v3 informs discover). Empty:
    # one is made at the first start and kept, with the boot counter, in the data dir.
    engine_id: str = ""

    @field_validator("engine_id")
    @classmethod
    def _engine_id(cls, value: str) -> str:
        text = value.removeprefix("0x")
        if value and not (len(text) % 2 == 0 and 10 <= len(text) <= 64 and _is_hex(text)):
            raise ValueError("engine_id must be 5 to 32 octets in hex, e.g. 0x80001f8880aa55")
        return text.lower()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value
