"""Intake and pipeline settlement (what MQTT acknowledges after), last-moment gating of
quarantined payloads, a writer that survives store errors, and request validation for
deactivations."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.api.app import create_app
from collector.config import ResolvedToken
from collector.core.errors import UnknownDevice
from collector.core.interfaces import Verdict
from collector.core.records import QuarantineEntry, Received
from collector.core.stats import Stats
from collector.decode import MqttJsonCodec, SnmpCodec
from collector.gate import Gate
from collector.profiles import ProfileResolver, load_profiles
from collector.retention import load_policy
from collector.runtime.deactivation import build_deactivator
from collector.runtime.intake import Intake
from collector.runtime.pipeline import Pipeline
from collector.sinks.sqlite import EmbeddedStore
from collector.tag import Tagger
from factories import mqtt_device
from provisioning.models import AccountStatus
from provisioning.receipts import Action
from provisioning.registry import Registry

POLICY = load_policy()


def setup(tmp_path: Path, queue_size: int = 100) -> tuple[Registry, Gate, EmbeddedStore, Pipeline, Intake]:
    registry = Registry(tmp_path / "registry.db")
    registry.import_devices([mqtt_device(1, "a"), mqtt_device(2, "b")], source="t")
    gate = Gate(registry)
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    stats = Stats()
    pipeline = Pipeline(
        gate, [store.sink], store.quarantine, stats, flush_interval=0.01, queue_size=queue_size
    )
    codecs = {"mqtt": MqttJsonCodec(), "snmp": SnmpCodec()}
    intake = Intake(gate, ProfileResolver(load_profiles()), codecs, Tagger(POLICY), pipeline, stats)
    return registry, gate, store, pipeline, intake


def message(device: int, rssi: int = -50, ack: Callable[[], None] | None = None) -> Received:
    body = json.dumps({"ts": time.time(), "wifi": {"rssi": rssi}}).encode()
    return Received("mqtt", f"hookflash/805ec0{device:06x}/signal", body, datetime.now(UTC), ack)


def test_quarantined_payload_of_a_stopped_account_is_dropped_at_the_last_moment(tmp_path: Path) -> None:
    registry, gate, store, pipeline, _intake = setup(tmp_path)
    settled: list[str] = []

    async def run() -> None:
        pipeline.start()
        entry = QuarantineEntry.of(
            "mqtt", "hookflash/805ec0000001/signal", b"{", "bad", datetime.now(UTC), "805ec0000001", "a"
        )
        pipeline.quarantine(entry, lambda: settled.append("quarantine"))
        event = registry.set_status("a", AccountStatus.REVOKED)  # lands before the writer runs
        assert event is not None
        gate.apply(event)
        await pipeline.stop()

    asyncio.run(run())
    assert store.queries.quarantined() == [] and settled == ["quarantine"]


def test_a_full_pipeline_refuses_without_settling(tmp_path: Path) -> None:
    _registry, _gate, store, pipeline, intake = setup(tmp_path, queue_size=2)
    settled: list[int] = []

    async def run() -> None:
        verdicts = [intake.receive(message(1, -40 - n, lambda n=n: settled.append(n))) for n in range(4)]
        assert verdicts == [Verdict.QUEUED, *[Verdict.REFUSED] * 3] and pipeline.saturated
        pipeline.start()
        await pipeline.stop()

    asyncio.run(run())
    assert settled == [0]  # the refused ones stay unacknowledged: the broker redelivers them
    assert pipeline.stats.queue_overflow == 3 and len(store.queries.query()) == 1


def test_the_writer_survives_a_failing_quarantine_store(tmp_path: Path) -> None:
    _registry, _gate, store, pipeline, intake = setup(tmp_path)
    real = store.quarantine.quarantine
    failures = [OSError("disk I/O error")]

    def flaky(entries: list[QuarantineEntry]) -> None:
        if failures:
            raise failures.pop()
        real(entries)

    store.quarantine.quarantine = flaky  # type: ignore[method-assign]

    async def run() -> None:
        pipeline.start()
        pipeline.quarantine(
            QuarantineEntry.of("mqtt", "t/x/signal", b"{", "bad", datetime.now(UTC), "805ec0000002", "b")
        )
        intake.receive(message(2))
        await pipeline.stop()

    asyncio.run(run())
    # retried, and the writer went on
    assert len(store.queries.quarantined()) == 1 and len(store.queries.query()) == 1


def test_a_device_can_only_be_removed_by_its_own_account(tmp_path: Path) -> None:
    registry, _gate, store, _pipeline, _intake = setup(tmp_path)
    deactivator = build_deactivator(registry, [store.sink], POLICY)
    with pytest.raises(UnknownDevice, match="account a has no device 805ec0000002"):
        deactivator.request(Action.REMOVE_DEVICE, "a", device_id="805ec0000002")
    assert registry.device("805ec0000002") is not None


def test_api_authenticates_before_reading_the_body_and_limits_its_size(tmp_path: Path) -> None:
    registry, _gate, store, _pipeline, _intake = setup(tmp_path)
    deactivator = build_deactivator(registry, [store.sink], POLICY)
    token = ResolvedToken("billing", frozenset({"deactivate"}), "s3cret-token")
    client = TestClient(create_app(deactivator, [token]))
    garbage = client.post(
        "/v1/deactivations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 401
    big = client.post(
        "/v1/deactivations",
        content=b"x" * 20_000,
        headers={"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"},
    )
    assert big.status_code == 413
    reuse = {"request_id": "req-00000001", "account_id": "a", "action": "suspend"}
    auth = {"Authorization": "Bearer s3cret-token"}
    assert client.post("/v1/deactivations", json=reuse, headers=auth).status_code == 202
    clash = client.post("/v1/deactivations", json={**reuse, "account_id": "b"}, headers=auth)
    assert clash.status_code == 409 and "acct" not in clash.text and '"a"' not in clash.text
