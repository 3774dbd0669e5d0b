"""The intake: one place for every source's items. It locates, gates, decodes, quarantines
and settles; and whatever handling one item raises, at any stage, is caught there for that
item alone, so the source goes on with the next."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collector.core.interfaces import Verdict
from collector.core.records import Kind, Observation, Received, Varbinds
from collector.gate import Gate
from collector.retention import load_policy
from collector.runtime.intake import Intake
from collector.runtime.pipeline import Pipeline
from collector.sinks.sqlite import EmbeddedStore
from factories import intake_for, mqtt_device, snmp_device
from provisioning.models import AccountStatus
from provisioning.registry import Registry

POLICY = load_policy()
PHONE, ATA = mqtt_device(1, "a"), snmp_device(2, "a")


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.registry = Registry(tmp_path / "registry.db")
        self.registry.import_devices([PHONE, ATA, mqtt_device(3, "b")], source="t")
        self.gate = Gate(self.registry)
        self.store = EmbeddedStore.open(tmp_path / "telemetry.db")
        self.intake, self.pipeline = intake_for(self.gate, self.store, POLICY, flush_interval=0.01)
        self.acks: list[str] = []

    def message(self, device: int, body: Any, name: str = "m") -> Received:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Received(
            "mqtt",
            f"hookflash/805ec0{device:06x}/signal",
            payload,
            datetime.now(UTC),
            lambda: self.acks.append(name),
        )

    def flush(self, *verdicts: Callable[[], Verdict]) -> list[Verdict]:
        async def run() -> list[Verdict]:
            self.pipeline.start()
            results = [v() for v in verdicts]
            await self.pipeline.stop()
            return results

        return asyncio.run(run())


def good(rssi: int = -50) -> dict[str, Any]:
    return {"ts": time.time(), "wifi": {"rssi": rssi}}


def test_an_item_of_an_unknown_device_is_dropped_unkept_and_settled(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    verdicts = s.flush(lambda: s.intake.receive(s.message(0x99, good(), "unknown")))
    assert verdicts == [Verdict.DROPPED] and s.acks == ["unknown"]
    assert s.store.queries.query() == [] and s.store.queries.quarantined() == []
    assert s.intake._stats.dropped_not_provisioned == 1


def test_an_item_of_a_stopped_account_is_dropped_not_even_quarantined(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    event = s.registry.set_status("b", AccountStatus.INACTIVE)
    assert event is not None
    s.gate.apply(event)
    verdicts = s.flush(lambda: s.intake.receive(s.message(3, b"{broken", "stopped")))
    assert verdicts == [Verdict.DROPPED] and s.acks == ["stopped"] and s.store.queries.quarantined() == []


def test_a_poison_json_integer_is_quarantined_and_the_next_message_stored(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    poison = b'{"ts": %d, "wifi": {"rssi": %s}}' % (int(time.time()), b"9" * 5000)
    verdicts = s.flush(
        lambda: s.intake.receive(s.message(1, poison, "poison")),
        lambda: s.intake.receive(s.message(1, good(-41), "next")),
    )
    assert verdicts == [Verdict.QUARANTINED, Verdict.QUEUED] and s.acks == ["poison", "next"]
    [entry] = s.store.queries.quarantined()
    assert "invalid JSON" in entry.reason and "digits" in entry.reason and entry.device_id == PHONE.id
    assert [r.fields for r in s.store.queries.query()] == [{"wifi_rssi_dbm": -41}]


STAGES = ["locate", "profile", "decode", "gate", "tag", "queue"]


@pytest.mark.parametrize("stage", STAGES)
def test_a_failure_at_any_stage_is_caught_for_that_item_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    s = Setup(tmp_path)
    intake: Intake = s.intake
    calls = [0]

    def once(real: Callable[..., Any]) -> Callable[..., Any]:
        def failing(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 1:
                raise RuntimeError(f"injected failure in {stage}")
            return real(*args, **kwargs)

        return failing

    codec = intake._codecs["mqtt"]
    target: tuple[Any, str] = {
        "locate": (codec, "locate"),
        "profile": (intake._profiles, "require"),
        "decode": (codec, "decode"),
        "gate": (s.gate, "admits"),
        "tag": (intake._tagger, "tag"),
        "queue": (s.pipeline, "put"),
    }[stage]
    monkeypatch.setattr(target[0], target[1], once(getattr(*target)))
    verdicts = s.flush(
        lambda: intake.receive(s.message(1, good(-40), "first")),
        lambda: intake.receive(s.message(1, good(-41), "second")),
    )
    assert s.acks == ["first", "second"]  # both settled: nothing left for a broker to redeliver
    assert verdicts[1] is Verdict.QUEUED
    assert [r.fields["wifi_rssi_dbm"] for r in s.store.queries.query()] == [-41]
    assert intake._stats.intake_faults == 1
    if stage == "locate":  # no device known yet: nobody to blame, nothing kept (P1)
        assert verdicts[0] is Verdict.DROPPED and s.store.queries.quarantined() == []
    else:
        assert verdicts[0] is Verdict.QUARANTINED
        [entry] = s.store.queries.quarantined()
        assert f"RuntimeError: injected failure in {stage}" in entry.reason and entry.device_id == PHONE.id


def test_an_snmp_answer_goes_through_the_same_intake(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    answer = Varbinds(
        {"1.3.6.1.4.1.42397.1.2.3.2.0": b"1.0.47.4", "1.3.6.1.2.1.1.3.0": 12_345_600},
        kinds=frozenset({Kind.FIRMWARE, Kind.PERFORMANCE}),
    )
    item = Received("snmp", "127.0.0.1:1161", answer, datetime.now(UTC), device_id=ATA.id)
    down = Observation(ATA.id, Kind.REACHABILITY, datetime.now(UTC), {"state": "down"}, "snmp")
    verdicts = s.flush(lambda: s.intake.receive(item), lambda: s.intake.derived(down))
    assert verdicts == [Verdict.QUEUED, Verdict.QUEUED]
    stored = {r.kind: r.fields for r in s.store.queries.query(device_id=ATA.id)}
    assert stored[Kind.FIRMWARE]["version"] == "1.0.47.4" and stored[Kind.PERFORMANCE]["uptime_s"] == 123_456
    assert stored[Kind.REACHABILITY] == {"state": "down"}


def test_a_pipeline_too_full_for_the_item_refuses_it_unsettled(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.pipeline = Pipeline(s.gate, [s.store.sink], s.store.quarantine, s.intake._stats, queue_size=1)
    s.intake._pipeline = s.pipeline
    verdict = s.intake.receive(s.message(1, good(), "full"))
    assert verdict is Verdict.REFUSED and s.acks == []
