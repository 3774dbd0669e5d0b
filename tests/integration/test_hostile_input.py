"""The hostile-input runs of bench/hostile_input.py, shorter: a running hookflash process,
a real broker or a hostile UDP agent, hostile items interleaved with valid ones. Every
valid item is stored exactly once and within 2 s, nothing hostile is stored, and the
process neither dies nor lets an exception escape a callback."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostile import Outcome, run_mqtt, run_snmp


def assert_clean(outcome: Outcome) -> None:
    assert outcome.crashed == 0, outcome
    assert outcome.valid_sent > 50 and outcome.lost == 0, outcome
    assert outcome.duplicates == 0 and outcome.stalls == 0 and outcome.hostile_stored == 0, outcome


@pytest.mark.slow
def test_mqtt_hostile_messages_among_valid_ones(tmp_path: Path) -> None:
    outcome = run_mqtt(tmp_path, hostile=3000)
    assert_clean(outcome)
    assert outcome.quarantined > 1000  # the hostile messages of provisioned devices, each with a reason


@pytest.mark.slow
def test_snmp_hostile_datagrams_among_valid_answers(tmp_path: Path) -> None:
    outcome = run_snmp(tmp_path, hostile=3000)
    assert_clean(outcome)
