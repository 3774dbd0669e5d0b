"""Value conversions shared by every transport's decoder.

One rule for text where a number is wanted, for every field and for the MQTT `ts`: text is
taken as a number only if it is exactly a decimal number (an optional sign, digits with an
optional fraction, an optional exponent: `4.1`, `-67`, `1.7e9`), once leading and trailing
blanks and NUL padding are removed (SNMP agents pad DisplayStrings). Anything else (`4,1`,
`0x10`, `1_000`, `nan`, `inf`, empty) is not a number. A JSON boolean is never a number.
A number outside its field's declared range (`min`, `max`), or not finite, is refused with
the field and the value."""

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


_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def parse_number(text: str) -> float:
    """Text → number by the one rule above; ValueError naming the text otherwise."""
    cleaned = text.replace("\x00", "").strip()
    if len(cleaned) > 64 or not _DECIMAL.fullmatch(cleaned):
        raise ValueError(f"{text[:32]!r} is not a decimal number")
    return float(cleaned)


def _number(raw: RawValue) -> float:
    if isinstance(raw, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(raw, _NUMBER):
        try:
            value = float(raw)
        except OverflowError:  # an int of more than about 308 digits
            digits = len(str(abs(int(raw))))
            raise ValueError(f"a whole number of {digits} digits is beyond 64 bits") from None
    elif isinstance(raw, _TEXT):
        value = parse_number(raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw)
    else:
        raise TypeError(f"expected a number, got {type(raw).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


_INT64 = 2**63


def _integer(raw: RawValue) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        number = _number(raw)
        if not number.is_integer():
            raise ValueError(f"{number} is not a whole number")
        value = int(number)
    if not -_INT64 <= value < _INT64:  # no device field means a number beyond 64 bits
        raise ValueError(f"a whole number of {len(str(abs(value)))} digits is beyond 64 bits")
    return value


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


def _in_range(spec: FieldSpec, value: float) -> None:
    if spec.min is not None and value < spec.min:
        raise ValueError(f"{value:g} is below the plausible minimum {spec.min:g}")
    if spec.max is not None and value > spec.max:
        raise ValueError(f"{value:g} is above the plausible maximum {spec.max:g}")


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
            seconds = _integer(raw) // 100
            _in_range(spec, seconds)
            return seconds
        if spec.type == "enum":
            assert spec.enum is not None
            key = str(_integer(raw)) if isinstance(raw, _NUMBER) else _text(raw)
            if key not in spec.enum:
                raise ValueError(f"{key!r} is not one of {sorted(spec.enum)}")
            return spec.enum[key]
        if spec.type == "int":
            whole = _integer(raw)
            scaled = round(whole * spec.scale) if spec.scale is not None else whole
            _in_range(spec, scaled)
            return scaled
        number = _number(raw) * (spec.scale if spec.scale is not None else 1.0)
        if not math.isfinite(number):
            raise ValueError(f"{number} is not a finite number")
        _in_range(spec, number)
        return round(number, 6)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConversionError(f"{spec.kind.value}.{spec.field}: {exc}") from None
