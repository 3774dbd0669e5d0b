"""The layout the README draws: sources decide nothing about storing (the import contracts
in pyproject.toml hold the layers; `lint-imports` runs in the test command)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.core.backoff import Backoff, backoff_delay

ROOT = Path(__file__).parents[2]
SOURCES = ROOT / "collector" / "sources"
# The gate, the quarantine constructor, the store and SQLite belong to the runtime and sinks.
FORBIDDEN = re.compile(
    r"\bgate\b|\bGate\b|QuarantineEntry|\bquarantine\b|SqliteStore|\bsqlite3?\b|\bstore\b", re.I
)


def test_no_source_mentions_the_gate_the_quarantine_the_store_or_sqlite() -> None:
    files = sorted(SOURCES.rglob("*.py"))
    assert len(files) >= 8
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert hits == []


def test_every_retry_loop_uses_the_one_backoff() -> None:
    loops = {
        "collector/sources/mqtt/subscriber.py": "Backoff(",
        "collector/runtime/pipeline.py": "Backoff(",
        "collector/runtime/spooled.py": "Backoff(",
        "collector/webhooks/dispatcher.py": "backoff_delay(",
        "collector/sources/snmp/poller.py": "backoff_delay(",
        "provisioning/postgres.py": "retry.next(",  # given the runtime's Backoff (lifecycle.py)
    }
    for path, call in loops.items():
        text = (ROOT / path).read_text()
        assert call in text, path
        assert "* 2" not in text and "2 **" not in text, f"{path} computes a backoff of its own"


@pytest.mark.parametrize(
    ("failures", "expected"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (50, 5.0), (10_000, 5.0)]
)
def test_backoff_doubles_from_its_first_wait_up_to_its_cap(failures: int, expected: float) -> None:
    assert backoff_delay(failures, 0.5, 5.0) == expected


def test_backoff_jitter_stays_within_its_band_and_resets() -> None:
    waits = [backoff_delay(3, 1.0, 300.0, jitter=0.2) for _ in range(500)]
    assert all(3.2 <= w <= 4.8 for w in waits) and len(set(waits)) > 100
    backoff = Backoff(0.1, 1.0)
    assert [backoff.next() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.1
