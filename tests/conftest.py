"""Shared fixtures: real mosquitto / snmpd / PostgreSQL processes on 127.0.0.1 ephemeral ports.

Backend-sensitive tests take `backend` (or `make_registry`, which does): they run once on
the embedded SQLite files and once on a PostgreSQL server the suite starts (tests/postgres.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from postgres import PASSWORD_ENV, Postgres
from provisioning.registry import Registry, open_registry_db, utcnow
from services import Mosquitto, Snmpd, SnmpdFactory, V3User, VictoriaMetrics

BACKENDS = ("sqlite", "postgres")
MakeRegistry = Callable[..., Registry]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Postgres, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty database of the suite's server; its password in hookflash's variable."""
    monkeypatch.setenv(PASSWORD_ENV, postgres_server.password)
    return postgres_server.create_database()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None on SQLite (the data dir's files); a new database's URL on PostgreSQL."""
    return None if backend == "sqlite" else str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_registry(database_url: str | None, tmp_path: Path) -> Iterator[MakeRegistry]:
    """`make_registry(clock=…)`: a registry on the test's backend, in `tmp_path` (its
    pseudonym key there too). Each call opens another connection to the same registry, as
    another process would."""
    opened: list[Registry] = []

    def make(clock: Callable[[], datetime] = utcnow, **_: Any) -> Registry:
        if database_url is None:
            registry = Registry(tmp_path / "registry.db", clock=clock)
        else:
            registry = Registry(
                open_registry_db(database_url), clock=clock, key_path=tmp_path / "registry.key"
            )
        opened.append(registry)
        return registry

    yield make
    for registry in opened:
        registry.close()


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
