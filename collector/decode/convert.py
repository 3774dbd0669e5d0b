"""Value conversions shared by every transport's decoder."""

from __future__ import annotations

import math
import re

from collector.core.errors import ConversionError
from collector.core.records import FieldValue, RawValue
from collector.profiles.model import FieldSpec

__all__ = ["ConversionError", "RawValue", "convert"]
MAX_STRING = 1024
# Tuples, not `int | float`: a union is built anew each time the expression runs.
_NUMBER = (int, float)
_TEXT = (bytes, str)


def _text(raw: RawValue) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raise TypeError(f"expected text, got {type(raw).__name__}")
    # DisplayString cleanup: agents pad with NULs and trailing whitespace.
    cleaned = raw.replace("\x00", "").strip()
    if not cleaned.isprintable():  # rare: control characters inside the text
        cleaned = "".join(ch for ch in cleaned if ch.isprintable())
    return cleaned[:MAX_STRING]


def _number(raw: RawValue) -> float:
    if isinstance(raw, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(raw, _NUMBER):
        value = float(raw)
    elif isinstance(raw, _TEXT):
        value = float(_text(raw))
    else:
        raise TypeError(f"expected a number, got {type(raw).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


def _integer(raw: RawValue) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    value = _number(raw)
    if not value.is_integer():
        raise ValueError(f"{value} is not a whole number")
    return int(value)


_MAC_TEXT = re.compile(
    r"^(?:0x)?([0-9a-f]{2})[:\- ]?([0-9a-f]{2})[:\-. ]?([0-9a-f]{2})[:\- ]?"
    r"([0-9a-f]{2})[:\-. ]?([0-9a-f]{2})[:\- ]?([0-9a-f]{2})$"
)


def _mac(raw: RawValue) -> str:
    """6 raw octets (PhysAddress), or text: aa:bb:…, AA-BB-…, aabb.ccdd.eeff, 0xAABBCCDDEEFF,
    "AA BB CC DD EE FF" (hex strings as some agents render them)."""
    if isinstance(raw, bytes) and len(raw) == 6:  # a text MAC needs 12 hex digits at least
        return ":".join(f"{b:02x}" for b in raw)
    match = _MAC_TEXT.match(_text(raw).lower())
    if match is None:
        raise ValueError(f"{raw!r} is not a MAC address")
    return ":".join(match.groups())


def convert(spec: FieldSpec, raw: RawValue) -> FieldValue:
    try:
        if spec.type == "string":
            return _text(raw)
        if spec.type == "oid":
            return _text(raw).lstrip(".")
        if spec.type == "mac":
            return _mac(raw)
        if spec.type == "bool":
            if isinstance(raw, bool):
                return raw
            raise TypeError(f"expected a boolean, got {type(raw).__name__}")
        if spec.type == "timeticks_s":
            return _integer(raw) // 100
        if spec.type == "enum":
            assert spec.enum is not None
            key = str(_integer(raw)) if isinstance(raw, _NUMBER) else _text(raw)
            if key not in spec.enum:
                raise ValueError(f"{key!r} is not one of {sorted(spec.enum)}")
            return spec.enum[key]
        if spec.type == "int":
            whole = _integer(raw)
            return round(whole * spec.scale) if spec.scale is not None else whole
        number = _number(raw) * (spec.scale if spec.scale is not None else 1.0)
        return round(number, 6)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConversionError(f"{spec.kind.value}.{spec.field}: {exc}") from None
