"""`[sip]`: the SIP listener phones send their RFC 6035 call-quality reports to."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` as (host, port); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:5060)")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: listen on an IP address, not {host!r}") from None
    return host, int(port)


class SipConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    listen: str = "127.0.0.1:5060"  # UDP, and TCP on the same port when `tcp`
    tcp: bool = True
    # TLS (`sips:`, RFC 3261's 5061): off unless a certificate and its key are given.
    tls_listen: str = "127.0.0.1:5061"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = Field(default=16384, ge=1024, le=65535)
    max_connections: int = Field(default=512, ge=1, le=65536, description="TCP and TLS connections at once")
    idle_timeout_s: float = Field(
        default=60, gt=0, le=3600, description="a connection idle this long is closed"
    )

    @field_validator("listen", "tls_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> SipConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both, or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
