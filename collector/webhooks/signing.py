"""Signing a webhook body, and what a receiver runs to check it."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Hookflash-Signature"
TIMESTAMP_HEADER = "X-Hookflash-Timestamp"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>`; the timestamp stops replays of old bodies."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver runs: constant-time compare, and reject stale timestamps."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


