"""Where a data dir keeps its files (a module of its own, so a command that only opens
them imports nothing else of the runtime)."""

from __future__ import annotations

from pathlib import Path


def registry_path(data_dir: Path) -> Path:
    return data_dir / "registry.db"


def store_path(data_dir: Path) -> Path:
    return data_dir / "telemetry.db"


def alerts_path(data_dir: Path) -> Path:
    return data_dir / "alerts.db"
