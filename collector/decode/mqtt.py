"""MQTT JSON payloads → Observations. Every payload is hostile until it has passed here.

`MqttJsonCodec` is what the intake asks: which device a message is from (by its topic, one
level of it, or the payload's own `device_id`), and the fields the device's profile reads
from it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from collector.core.errors import ConversionError, Rejected
from collector.core.records import FieldValue, Kind, Observation, RawValue, Received
from collector.decode.base import Decoded, Located
from collector.decode.convert import convert, parse_number
from collector.profiles.model import DeviceProfile, MqttFieldSpec
from provisioning.models import Transport, normalize_mac

MAX_DEPTH = 16
FUTURE_SKEW = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)
_FUTURE_SKEW_S = FUTURE_SKEW.total_seconds()
_MAX_AGE_S = MAX_AGE.total_seconds()
_KINDS = {k.value: k for k in Kind}
# Tuples, not `int | float`: a union is built anew each time the expression runs.
_NUMBER = (int, float)
_CONTAINER = (dict, list)
_SCALAR = (bool, int, float, str)


def _reject_constant(name: str) -> Any:
    raise Rejected(f"JSON constant {name} is not allowed")


# One decoder for all payloads: json.loads with an option builds a new one on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _lookup(document: dict[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = document
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def parse_payload(payload: bytes, max_bytes: int) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise Rejected(f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise Rejected(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise Rejected(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except Rejected:
        raise
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (4,300)
        raise Rejected(f"invalid JSON: {str(exc)[:120]}") from None
    if not isinstance(document, dict):
        raise Rejected(f"payload must be a JSON object, got {type(document).__name__}")
    # Nesting deeper than MAX_DEPTH needs more than MAX_DEPTH brackets: count before walking.
    if payload.count(b"{") + payload.count(b"[") > MAX_DEPTH and _depth(document, MAX_DEPTH) > MAX_DEPTH:
        raise Rejected(f"JSON nested deeper than {MAX_DEPTH} levels")
    return document


def _observed_at(document: dict[str, Any], received_at: datetime) -> datetime:
    ts = document.get("ts")
    if ts is None:
        return received_at
    if isinstance(ts, str):  # the one rule for text where a number is wanted (convert)
        try:
            ts = parse_number(ts)
        except ValueError as exc:
            raise Rejected(f"ts must be Unix seconds: {exc}") from None
    if isinstance(ts, bool) or not isinstance(ts, _NUMBER):
        raise Rejected(f"ts must be Unix seconds, got {type(ts).__name__}")
    received = received_at.timestamp()  # NaN and Infinity never get here (parse_payload)
    if ts > received + _FUTURE_SKEW_S:
        raise Rejected(f"ts {_when(ts)} is in the future")
    if ts < received - _MAX_AGE_S:
        raise Rejected(f"ts {_when(ts)} is older than {MAX_AGE.days} days")
    return datetime.fromtimestamp(ts, UTC)


def _when(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6g}"


def decode_mqtt(
    profile: DeviceProfile,
    device_id: str,
    kind_name: str,
    payload: bytes,
    received_at: datetime,
    max_bytes: int = 65536,
    document: dict[str, Any] | None = None,
) -> Observation:
    """`document`: the payload already parsed (when the device id was read from it)."""
    kind = _KINDS.get(kind_name)
    if kind is None:
        raise Rejected(f"unknown record kind {kind_name!r} in topic") from None
    specs = _specs(profile, kind)
    if not specs:
        raise Rejected(f"profile {profile.name} declares no {kind.value} fields")
    if document is None:
        document = parse_payload(payload, max_bytes)
    claimed = document.get("device_id")
    if claimed is not None and _plain_mac(claimed) != device_id:
        raise Rejected(f"payload device_id {str(claimed)[:32]!r} contradicts topic device {device_id}")
    observed_at = _observed_at(document, received_at)
    fields: dict[str, FieldValue] = {}
    for spec, parts in specs:
        raw = _lookup(document, parts)
        if raw is None:
            continue
        if isinstance(raw, _CONTAINER):
            raise Rejected(f"{spec.path}: expected a value, got a {type(raw).__name__}")
        try:
            fields[spec.field] = convert(spec, _as_raw(raw))
        except ConversionError as exc:
            raise Rejected(f"{spec.path}: {exc}") from None
    if not fields:
        raise Rejected(f"no {kind.value} field of profile {profile.name} in payload")
    # A payload with its own timestamp identifies itself: a redelivered copy (QoS 1 after a
    # crash between store and acknowledgement) gets the same key and is stored once.
    dedupe_key = (
        hashlib.sha256(device_id.encode() + b"/" + payload).hexdigest()[:24] if "ts" in document else None
    )
    return Observation(
        device_id=device_id,
        kind=kind,
        observed_at=observed_at,
        fields=fields,
        source="mqtt",
        dedupe_key=dedupe_key,
    )


_Specs = list[tuple[MqttFieldSpec, tuple[str, ...]]]
_SPECS: dict[tuple[int, Kind], tuple[DeviceProfile, _Specs]] = {}


def _specs(profile: DeviceProfile, kind: Kind) -> _Specs:
    """The profile's fields of one kind with their split paths, computed once per profile
    (profiles are immutable)."""
    cached = _SPECS.get((id(profile), kind))
    if cached is None or cached[0] is not profile:
        specs = [(s, tuple(s.path.split("."))) for s in profile.mqtt if s.kind is kind and not s.secret]
        cached = _SPECS[(id(profile), kind)] = (profile, specs)
    return cached[1]


def _plain_mac(value: object) -> str:
    return "".join(ch for ch in str(value).lower() if ch not in ":-. ")


def _as_raw(value: Any) -> RawValue:
    if isinstance(value, _SCALAR):
        return value
    raise Rejected(f"unsupported JSON value {type(value).__name__}")


def _device_by_mac(raw: object) -> str | None:
    try:
        return normalize_mac(str(raw)) if raw else None
    except ValueError:
        return None


class MqttJsonCodec:
    """Where a message is from, per `device_id_from`, and what its JSON holds."""

    transport = Transport.MQTT
    uses_profile = True

    def __init__(
        self,
        device_id_from: Literal["topic-root", "topic-level", "payload"] = "topic-root",
        device_id_level: int = 1,
        max_payload_bytes: int = 65536,
        payload_identity_level: int | None = None,
    ) -> None:
        self._mode = device_id_from
        self._level = device_id_level
        self._bound_level = payload_identity_level
        self._max_bytes = max_payload_bytes

    def locate(self, item: Received) -> Located:
        """The device's topic root (`<root>/<kind>`), a MAC at one level of the topic, or the
        payload's `device_id` and `kind` (then the payload is parsed here, once)."""
        topic = item.origin
        if self._mode == "topic-root":
            root, _, kind = topic.rpartition("/")
            return Located(None, root, kind)
        if self._mode == "topic-level":
            levels = topic.split("/")
            raw = levels[self._level] if self._level < len(levels) - 1 else ""
            return Located(_device_by_mac(raw), None, levels[-1])
        payload = item.payload
        assert isinstance(payload, bytes)
        document = parse_payload(payload, self._max_bytes)
        named = document.get("kind")
        device = _device_by_mac(document.get("device_id"))
        if self._bound_level is not None:
            levels = topic.split("/")
            bound = _device_by_mac(levels[self._bound_level]) if self._bound_level < len(levels) else None
            if device is None or device != bound:
                raise Rejected(f"payload names device {device}, but the broker bound the sender to {bound}")
        return Located(device, None, named if isinstance(named, str) else "", document)

    def decode(
        self, profile: DeviceProfile | None, device_id: str, item: Received, located: Located | None
    ) -> Decoded:
        assert profile is not None  # uses_profile
        payload = item.payload
        assert isinstance(payload, bytes) and located is not None
        observation = decode_mqtt(
            profile, device_id, located.kind, payload, item.received_at, self._max_bytes, located.document
        )
        return [observation], ()
