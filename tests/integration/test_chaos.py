"""Crash consistency under 20 SIGKILLs (tests/chaos.py): every acknowledged QoS 1 message of
an active account stored exactly once in SQLite and in VictoriaMetrics; nothing of an
account revoked between kills left in SQLite or, once its receipt is done, in VictoriaMetrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import run


@pytest.mark.slow
def test_twenty_kills_lose_duplicate_and_resurrect_nothing(tmp_path: Path) -> None:
    outcome = run(tmp_path, kills=20)
    assert outcome.kills == 20 and outcome.kept_expected > 1000, outcome
    assert (outcome.sqlite_missing, outcome.sqlite_duplicates) == (0, 0), outcome
    assert (outcome.remote_missing, outcome.remote_duplicates) == (0, 0), outcome
    assert outcome.resurrected == 0, outcome
