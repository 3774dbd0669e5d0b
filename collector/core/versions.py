"""Firmware version ordering, shared by change detection and the firmware views."""

from __future__ import annotations

import re


def version_key(version: str) -> tuple[int, ...] | None:
    """The numbers in a version string, for ordering ("1.0.10" after "1.0.9"); None if it
    holds none."""
    parts = re.findall(r"\d+", version)
    return tuple(int(p) for p in parts) if parts else None
