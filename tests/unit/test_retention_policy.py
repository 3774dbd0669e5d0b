"""Retention policy loading: every kind maps to exactly one class; errors name the culprit."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest

from collector.core.records import Kind
from collector.retention import EndAction, PolicyError, load_policy, parse_duration


def default_text() -> str:
    return resources.files("collector.retention").joinpath("default.toml").read_text()


def test_default_policy_covers_every_kind() -> None:
    policy = load_policy()
    assert set(policy.kinds) == set(Kind)
    assert policy.class_for(Kind.DIAGNOSTIC).ttl == timedelta(hours=72)  # P8: kept briefly
    assert policy.class_for(Kind.CONFIG).end_action is EndAction.DELETE
    assert policy.class_for(Kind.FIRMWARE).while_active


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[kinds]", '[kinds]\nvoicemail = "operational"'), "unknown record kind(s) voicemail"),
        (('signal = "operational"', 'signal = "forever"'), "kind 'signal' maps to unknown class 'forever'"),
        (('diagnostic = "troubleshooting"\n', ""), "kind(s) diagnostic have no retention class"),
        (('ttl = "72h"', 'ttl = "72 hours"'), "classes.troubleshooting.ttl: bad duration '72 hours'"),
        (('end_action = "delete"', 'end_action = "shred"'), "classes.identifying.end_action"),
        (("[classes.operational]", "[classes.operational]\nkeep = true"), "classes.operational.keep"),
    ],
)
def test_bad_policy_fails_naming_what_is_wrong(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = default_text()
    assert change[0] in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_policy_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[classes\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path)


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2w") == timedelta(days=14)
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration("soon")


def test_default_policy_is_plain_toml() -> None:
    data = tomllib.loads(default_text())
    assert data["inactive_grace"] == "30d"
