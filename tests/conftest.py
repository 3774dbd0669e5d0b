"""Shared fixtures: real mosquitto / snmpd processes on 127.0.0.1 ephemeral ports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from services import Mosquitto, Snmpd, SnmpdFactory, V3User, VictoriaMetrics


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


@pytest.fixture
def snmpd_factory(tmp_path: Path) -> Iterator[SnmpdFactory]:
    """``snmpd_factory({oid: (type, value)}, community=..., port=...)`` -> a running Snmpd."""
    started: list[Snmpd] = []

    def start(
        overrides: Mapping[str, tuple[str, str | int]] | None = None,
        *,
        community: str = "public",
        port: int | None = None,
        v3_users: Sequence[V3User] = (),
    ) -> Snmpd:
        agent = Snmpd(
            tmp_path / f"snmpd{len(started)}",
            community=community,
            overrides=overrides or {},
            port=port,
            v3_users=v3_users,
        )
        started.append(agent)
        return agent.start()

    yield start
    for agent in started:
        agent.stop()
