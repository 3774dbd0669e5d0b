"""One way to turn a pydantic ValidationError into a message a person can act on."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def describe(exc: ValidationError, default_location: str = "value") -> str:
    """`a.b: what is wrong; c: what is wrong` — locations as in the file, pydantic's prefix removed."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or default_location
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def validate_strictly(model: type[M], data: Any) -> M:
    """Validate what a data file (TOML) held by the rules of strict JSON: a string is never
    taken for a number or a boolean (`port = "9"`, `enabled = "no"`, `qos = true` are
    errors), while text still names an enum member, a path or a duration. Raises
    ValidationError listing every problem, not the first."""
    return model.model_validate_json(json.dumps(data, default=str), strict=True)
