"""Device import from CSV or JSON: validate every row, import all or nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from provisioning.models import Device
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


def _json_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Objects of a JSON array or JSON Lines, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and (text[pos].isspace() or text[pos] in chars):
            pos += 1

    skip("")
    in_array = pos < end and text[pos] == "["
    if in_array:
        pos += 1
    while True:
        skip(",")
        if pos >= end or (in_array and text[pos] == "]"):
            return
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, f"invalid JSON: {exc.msg}"
            return
        yield (
            line,
            item if isinstance(item, dict) else f"expected an object, got {type(item).__name__}",
        )


def parse_devices(path: Path) -> list[Device]:
    """Parse and validate a device file; raise ImportRejected listing every bad row."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ImportRejected(path, [RowError(1, f"file is not UTF-8: {exc.reason}")]) from None
    rows = _json_rows(text) if path.suffix.lower() in (".json", ".jsonl") else _csv_rows(text)
    devices: list[Device] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
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
        first_line[device.id] = line
        devices.append(device)
    if errors:
        raise ImportRejected(path, errors)
    if not devices:
        raise ImportRejected(path, [RowError(1, "no devices in file")])
    return devices
