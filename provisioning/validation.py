"""One way to turn a pydantic ValidationError into a message a person can act on."""

from __future__ import annotations

from pydantic import ValidationError


def describe(exc: ValidationError, default_location: str = "value") -> str:
    """`a.b: what is wrong; c: what is wrong` — locations as in the file, pydantic's prefix removed."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or default_location
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
