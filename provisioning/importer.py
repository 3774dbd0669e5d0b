"""Device import from CSV or JSON: validate every row, import all or nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from provisioning.models import Device, Transport
from provisioning.validation import describe

# Header spellings accepted besides the field names themselves.
_ALIASES = {
    "mac": "id",
    "device_id": "id",
    "device": "id",
    "account": "account_id",
    "topic": "address",
}


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class ImportRejected(ValueError):
    """Raised when any row is bad; nothing was imported."""

    def __init__(self, path: Path, errors: list[RowError]) -> None:
        self.path = path
        self.errors = errors
        lines = "\n".join(f"  {path.name}:{e}" for e in errors)
        super().__init__(f"{len(errors)} bad row(s) in {path}, nothing imported:\n{lines}")


def _canonical(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = str(key).strip().lower()
        name = _ALIASES.get(name, name)
        if isinstance(value, str):
            value = value.strip()
            if value == "" and name in ("profile", "credentials", "debug_until"):
                continue
        out[name] = value
    return out


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        if None in row:
            yield reader.line_num, f"too many columns ({len(row[None])} extra)"
            continue
        if all(v in (None, "") for v in row.values()):
            continue
        yield reader.line_num, dict(row)


_DEVICE_FIELDS = frozenset(Device.model_fields)
_NOT_DEVICES = "expected a JSON array of device objects, or JSON Lines"


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    return stripped[:1] in ("[", "{")


def _is_wrapper(item: dict[str, Any]) -> bool:
    """A top-level object that holds devices (or anything else) rather than being one."""
    keys = set(_canonical(item))
    holds_objects = any(isinstance(v, list) and any(isinstance(x, dict) for x in v) for v in item.values())
    return not keys & _DEVICE_FIELDS or holds_objects


def _json_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Objects of a JSON array or JSON Lines, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)

    def skip_space() -> None:
        nonlocal pos
        while pos < end and text[pos].isspace():
            pos += 1

    skip_space()
    if pos < end and text[pos] == "[":
        yield from _json_array(text, pos, decoder)
        return
    first = True
    while True:
        skip_space()
        if pos >= end:
            return
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, f"invalid JSON: {exc.msg}"
            return
        if first and isinstance(item, dict) and _is_wrapper(item):
            yield line, _NOT_DEVICES
            return
        first = False
        yield line, item if isinstance(item, dict) else f"expected an object, got {_json_type(item)}"


def _json_array(text: str, pos: int, decoder: json.JSONDecoder) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Items of the JSON array opening at text[pos]; a malformed array ends with one error."""
    end = len(text)
    opened_on = text.count("\n", 0, pos) + 1
    last_line = text.rstrip().count("\n") + 1
    unclosed = f"JSON array opened on line {opened_on} is not closed: missing ']' at the end of the file"
    pos += 1

    def skip_space() -> int:
        nonlocal pos
        while pos < end and text[pos].isspace():
            pos += 1
        return text.count("\n", 0, pos) + 1

    line = skip_space()
    if pos < end and text[pos] == "]":
        pos += 1
    else:
        while True:
            if pos >= end:
                yield last_line, unclosed
                return
            try:
                item, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                yield exc.lineno, f"invalid JSON: {exc.msg}"
                return
            yield line, item if isinstance(item, dict) else f"expected an object, got {_json_type(item)}"
            line = skip_space()
            if pos < end and text[pos] == ",":
                pos += 1
                line = skip_space()
                if pos < end and text[pos] == "]":
                    yield line, "invalid JSON: trailing comma before ']'"
                    return
                continue
            if pos < end and text[pos] == "]":
                pos += 1
                break
            if pos >= end:
                yield last_line, unclosed
            else:
                yield line, "invalid JSON: expected ',' or ']' after an array item"
            return
    line = skip_space()
    if pos < end:
        yield line, "invalid JSON: unexpected text after the closing ']' of the array"


def _json_type(item: object) -> str:
    names = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(item), "a number")


def parse_devices(path: Path, known_profiles: Collection[str] | None = None) -> list[Device]:
    """Parse and validate a device file; raise ImportRejected listing every bad row.

    With `known_profiles`, a row naming any other profile is a bad row.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected(path, [RowError(1, f"file is not UTF-8: {exc.reason}")]) from None
    is_json = path.suffix.lower() in (".json", ".jsonl") or _looks_like_json(text)
    rows = _json_rows(text) if is_json else _csv_rows(text)
    devices: list[Device] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    topic_owner: dict[str, tuple[str, int]] = {}
    for line, row in rows:
        if isinstance(row, str):
            errors.append(RowError(line, row))
            continue
        try:
            device = Device.model_validate(_canonical(row))
        except ValidationError as exc:
            errors.append(RowError(line, describe(exc, "row")))
            continue
        if device.id in first_line:
            errors.append(
                RowError(line, f"duplicate device {device.id} (first on line {first_line[device.id]})")
            )
            continue
        if known_profiles is not None and device.profile and device.profile not in known_profiles:
            known = ", ".join(sorted(known_profiles)) or "none"
            errors.append(RowError(line, f"profile: unknown profile {device.profile!r}; known: {known}"))
            continue
        if device.transport is Transport.MQTT:
            if device.address in topic_owner:
                owner, owner_line = topic_owner[device.address]
                errors.append(
                    RowError(
                        line,
                        f"topic {device.address} already used by device {owner} on line {owner_line}",
                    )
                )
                continue
            topic_owner[device.address] = (device.id, line)
        first_line[device.id] = line
        devices.append(device)
    if errors:
        raise ImportRejected(path, errors)
    if not devices:
        raise ImportRejected(path, [RowError(1, "no devices in file")])
    return devices
