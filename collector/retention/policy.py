"""Loading and validating the retention policy TOML."""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from collector.core.errors import PolicyError
from collector.core.records import Anonymization, EndAction, Kind, RetentionClass
from provisioning.validation import describe, validate_strictly

WHILE_ACTIVE = "while-active"
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"bad duration {text!r}: use a number and s, m, h, d or w, e.g. '30d'")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _ClassSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl: str
    end_action: EndAction
    description: str = ""

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        if value != WHILE_ACTIVE:
            parse_duration(value)
        return value


class _PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inactive_grace: str = "30d"
    quarantine_ttl: str = "7d"
    aggregate_text_fields: list[str] = []
    aggregate_text_values: dict[str, list[str]] = {}
    min_group_size: int = Field(default=10, ge=1, le=100_000)
    classes: dict[str, _ClassSpec] = Field(min_length=1)
    kinds: dict[str, str]

    @field_validator("inactive_grace", "quarantine_ttl")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    classes: dict[str, RetentionClass]
    kinds: dict[Kind, str]
    inactive_grace: timedelta
    quarantine_ttl: timedelta = timedelta(days=7)
    aggregate_text_fields: frozenset[str] = frozenset()
    anonymization: Anonymization = Anonymization()
    origin: str

    def class_for(self, kind: Kind) -> RetentionClass:
        return self.classes[self.kinds[kind]]


def _build(spec: _PolicySpec, origin: str) -> RetentionPolicy:
    known_kinds = {k.value for k in Kind}
    unknown_kinds = sorted(set(spec.kinds) - known_kinds)
    if unknown_kinds:
        raise PolicyError(
            f"{origin}: unknown record kind(s) {', '.join(unknown_kinds)} in [kinds]; "
            f"known kinds: {', '.join(sorted(known_kinds))}"
        )
    strays = sorted(set(spec.aggregate_text_values) - set(spec.aggregate_text_fields))
    if strays:
        raise PolicyError(
            f"{origin}: aggregate_text_values names field(s) {', '.join(strays)} that "
            "aggregate_text_fields does not list"
        )
    missing = sorted(known_kinds - set(spec.kinds))
    if missing:
        raise PolicyError(f"{origin}: kind(s) {', '.join(missing)} have no retention class in [kinds]")
    for kind, cls in sorted(spec.kinds.items()):
        if cls not in spec.classes:
            raise PolicyError(
                f"{origin}: kind {kind!r} maps to unknown class {cls!r}; "
                f"defined classes: {', '.join(sorted(spec.classes))}"
            )
    classes = {
        name: RetentionClass(
            name=name,
            ttl=None if c.ttl == WHILE_ACTIVE else parse_duration(c.ttl),
            end_action=c.end_action,
            description=c.description,
        )
        for name, c in spec.classes.items()
    }
    return RetentionPolicy(
        classes=classes,
        kinds={Kind(k): v for k, v in spec.kinds.items()},
        inactive_grace=parse_duration(spec.inactive_grace),
        quarantine_ttl=parse_duration(spec.quarantine_ttl),
        aggregate_text_fields=frozenset(spec.aggregate_text_fields),
        anonymization=Anonymization(
            frozenset(spec.aggregate_text_fields),
            MappingProxyType({f: frozenset(v) for f, v in spec.aggregate_text_values.items()}),
            spec.min_group_size,
        ),
        origin=origin,
    )


def policy_from_dict(data: dict[str, Any], origin: str) -> RetentionPolicy:
    try:
        spec = validate_strictly(_PolicySpec, data)
    except ValidationError as exc:
        raise PolicyError(f"{origin}: {describe(exc)}") from None
    return _build(spec, origin)


def load_policy(path: Path | None = None) -> RetentionPolicy:
    """Load a policy file, or the default shipped with the package when `path` is None."""
    if path is None:
        text = resources.files("collector.retention").joinpath("default.toml").read_text()
        origin = "default retention policy"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read retention policy: {exc.strerror}") from None
        origin = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: not valid TOML: {exc}") from None
    return policy_from_dict(data, origin)
