"""Alerts end to end in a running hookflash: each rule fires once per device while its
condition holds (deduplicated), clears with a recovery notice, and is delivered to the log
and to a real webhook receiver, signed. A device whose account stops being active gets no
alert and no recovery notice, and nothing about it is kept. /metrics reflects the run."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.config import (
    ApiConfig,
    ConfigError,
    MqttConfig,
    ServiceConfig,
    SnmpConfig,
    SnmpCredential,
    load_config,
)
from collector.config.alerts import (
    AlertsConfig,
    AlertWebhook,
    FirmwareRegressedRule,
    MosBelowRule,
    OfflineRule,
    RegistrationLostRule,
)
from collector.core.interfaces import Verdict
from collector.core.records import FieldValue, Kind, Observation
from collector.retention import load_policy
from collector.runtime.export import export_account
from collector.sinks.sqlite import EmbeddedStore, TelemetryQueries
from collector.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from factories import record, snmp_device
from provisioning.models import AccountStatus
from provisioning.registry import Registry
from receiver import WebhookReceiver
from runner import RunningService, eventually
from services import free_port

TOKEN, SECRET = "alerts-api-token-0123456789", "noc-webhook-secret"
D = {n: snmp_device(n, "acct-a") for n in (1, 2, 3, 4)}
D[5] = snmp_device(5, "acct-b")
D[6] = snmp_device(6, "acct-c")
D[7] = snmp_device(7, "acct-a", port=free_port("udp"))  # nobody answers: its polls time out


def obs(n: int, kind: Kind, at: datetime, **fields: FieldValue) -> Observation:
    return Observation(device_id=D[n].id, kind=kind, observed_at=at, fields=fields, source="snmp")


def submit(running: RunningService, observations: Sequence[Observation]) -> None:
    assert running.service is not None
    intake = running.service.intake

    async def go() -> list[bool]:
        return [intake.derived(o) is Verdict.QUEUED for o in observations]

    assert all(asyncio.run_coroutine_threadsafe(go(), running.loop).result(10))


def rounds(running: RunningService) -> int:
    assert running.service is not None and running.service.observability.alerts is not None
    return running.service.observability.alerts.rounds


def metrics(running: RunningService) -> dict[str, float]:
    assert running.service is not None
    url = f"http://127.0.0.1:{running.service.api_port}/metrics"
    text = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    return {
        s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_alert_rules_fire_once_clear_and_respect_revocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="collector.alerts")
    monkeypatch.setenv("TEST_ALERT_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_NOC_SECRET", SECRET)
    now = datetime.now(UTC)
    registry = Registry(tmp_path / "registry.db", clock=lambda: now - timedelta(hours=2))
    registry.import_devices(D.values(), source="test")
    # acct-c's device stopped registering and went silent, then the account went inactive.
    EmbeddedStore.open(tmp_path / "telemetry.db").sink.write(
        [
            record(
                load_policy(), D[6], Kind.REGISTRATION, {"line1_state": "failed"}, at=now - timedelta(hours=1)
            )
        ]
    )
    registry.set_status("acct-c", AccountStatus.INACTIVE)

    with WebhookReceiver() as receiver:
        config = ServiceConfig(
            data_dir=tmp_path,
            snmp=SnmpConfig(interval_s=0.5, timeout_s=0.2, retries=0),
            credentials={"default": SnmpCredential.model_validate({"community": "public"})},
            mqtt=MqttConfig(enabled=False),
            api=ApiConfig(enabled=True, port=free_port("tcp"), token_env="TEST_ALERT_TOKEN"),
            alerts=AlertsConfig(
                enabled=True,
                interval_s=0.1,
                rules=[
                    OfflineRule(name="offline", type="offline", minutes=10),
                    MosBelowRule(name="poor-mos", type="mos_below", threshold=3.5, calls=3),
                    RegistrationLostRule(name="reg-lost", type="registration_lost"),
                    FirmwareRegressedRule(name="regressed", type="firmware_regressed"),
                ],
                webhooks=[AlertWebhook(name="noc", url=receiver.url, secret_env="TEST_NOC_SECRET")],
            ),
        )
        with RunningService(config) as running:
            minute = timedelta(minutes=1)
            submit(
                running,
                [
                    obs(1, Kind.REGISTRATION, now - 20 * minute, line1_state="registered"),
                    obs(5, Kind.REGISTRATION, now - 30 * minute, line1_state="registered"),
                    *(
                        obs(2, Kind.CALL_QUALITY, now - k * minute, mos=m)
                        for k, m in ((3, 3.0), (2, 3.2), (1, 3.1))
                    ),
                    obs(3, Kind.REGISTRATION, now, line1_state="failed", line2_state="unregistered"),
                    obs(4, Kind.FIRMWARE, now - 2 * minute, version="1.0.47.4"),
                    obs(4, Kind.FIRMWARE, now - minute, version="1.0.43.11"),
                ],
            )
            expected_firing = {
                ("offline", 1),
                ("poor-mos", 2),
                ("reg-lost", 3),
                ("regressed", 4),
                ("offline", 5),
            }
            ids = {d.id: n for n, d in D.items()}

            def notices(event: str) -> set[tuple[str, int]]:
                return {
                    (p["rule"], ids[p["device_id"]])
                    for p in (d.json() for d in receiver.deliveries)
                    if p["event"] == event
                }

            eventually(lambda: notices("alert.firing") == expected_firing, 20, "one firing notice per alert")
            seen = rounds(running)
            eventually(lambda: rounds(running) >= seen + 10, 20, "ten more evaluation rounds")
            assert len(receiver.deliveries) == 5, "deduplicated: no repeat while still firing"

            body = {d.json()["rule"]: d.json() for d in receiver.deliveries}
            assert body["poor-mos"]["detail"] == {"mean_mos": 3.1, "calls": 3, "threshold": 3.5}
            assert body["regressed"]["detail"]["version"] == "1.0.43.11"
            assert body["regressed"]["detail"]["previous_version"] == "1.0.47.4"
            assert body["reg-lost"]["detail"]["lines"] == {
                "line1_state": "failed",
                "line2_state": "unregistered",
            }
            for delivery in receiver.deliveries:
                assert delivery.headers["X-Hookflash-Event"] == "alert.firing"
                assert verify(
                    SECRET.encode(),
                    delivery.headers[TIMESTAMP_HEADER],
                    delivery.body,
                    delivery.headers[SIGNATURE_HEADER],
                )
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{running.service.api_port}",  # type: ignore[union-attr]
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            firing = {(a["rule"], ids[a["device_id"]]) for a in api.get("/v1/alerts").json()}
            assert firing == expected_firing  # and never D6: its account is inactive

            # P6: the export of acct-a holds its alerts and the notices sent about them.
            held = export_account(Registry(tmp_path / "registry.db"), [], "acct-a")["alerts"]
            mine = expected_firing - {("offline", 5)}
            assert {(a["rule"], ids[a["device_id"]]) for a in held["alerts"]} == mine
            assert len(held["notices"]) == 4 and {n["event"] for n in held["notices"]} == {"alert.firing"}

            # Everything stored so far is counted, per sink and class.
            stored = TelemetryQueries.open(tmp_path / "telemetry.db")
            held = {
                c: n
                for c, n in stored.db.connection.execute(
                    "SELECT retention_class, count(*) FROM telemetry WHERE account_id != 'acct-c' GROUP BY 1"
                )
            }
            m = metrics(running)
            assert {
                c: m[f"hookflash_records_stored_total{{retention_class={c}}}{{sink=sqlite}}"] for c in held
            } == held
            assert m["hookflash_sink_write_seconds_count{sink=sqlite}"] >= 1
            assert (
                m["hookflash_alerts_firing{rule=offline}"] == 2
                and m["hookflash_alerts_firing{rule=poor-mos}"] == 1
            )
            assert m["hookflash_queue_capacity"] > 0 and "hookflash_queue_depth{queue=pipeline}" in m
            assert m["hookflash_accounts{status=inactive}"] == 1
            eventually(
                lambda: metrics(running)["hookflash_polls_timed_out_total"] >= 2, 20, "D7's polls to time out"
            )
            m = metrics(running)
            assert m["hookflash_polls_timed_out_total"] == m["hookflash_polls_failed_total"] > 0
            assert m["hookflash_polls_sent_total"] >= m["hookflash_polls_failed_total"]

            # acct-b is revoked (from another process): D5's alert goes away without a notice.
            Registry(tmp_path / "registry.db").set_status("acct-b", AccountStatus.REVOKED, "test")
            eventually(
                lambda: (
                    ("offline", 5)
                    not in {(a["rule"], ids[a["device_id"]]) for a in api.get("/v1/alerts").json()}
                ),
                20,
                "D5 forgotten",
            )
            assert metrics(running)["hookflash_collection_stops_total{event=AccountRevoked}"] == 1

            # D1..D4 recover.
            later = datetime.now(UTC)
            submit(
                running,
                [
                    obs(1, Kind.REGISTRATION, later, line1_state="registered"),
                    *(obs(2, Kind.CALL_QUALITY, later, mos=4.4) for _ in range(3)),
                    obs(3, Kind.REGISTRATION, later, line1_state="registered", line2_state="unregistered"),
                    obs(4, Kind.FIRMWARE, later, version="1.0.47.4"),
                ],
            )
            expected_resolved = {("offline", 1), ("poor-mos", 2), ("reg-lost", 3), ("regressed", 4)}
            eventually(lambda: notices("alert.resolved") == expected_resolved, 20, "four recovery notices")
            seen = rounds(running)
            eventually(lambda: rounds(running) >= seen + 10, 20, "ten more evaluation rounds")
            assert (
                len(receiver.deliveries) == 9
            )  # 5 firing + 4 resolved; nothing about D5 after its revocation
            assert api.get("/v1/alerts").json() == []
            resolved = next(d.json() for d in receiver.deliveries if d.json()["event"] == "alert.resolved")
            assert resolved["duration_s"] >= 0 and resolved["since"] < resolved["at"]

    with sqlite3.connect(tmp_path / "alerts.db") as db:
        left = db.execute(
            "SELECT (SELECT count(*) FROM alert_state) + (SELECT count(*) FROM outbox WHERE payload LIKE ?)",
            (f"%{D[5].id}%",),
        ).fetchone()[0]
    assert left == 0, "nothing about the revoked account's device is kept"
    logged = [r.getMessage() for r in caplog.records if r.name == "collector.alerts.engine"]
    assert sum("FIRING" in line for line in logged) == 5 and sum("RESOLVED" in line for line in logged) == 4
    assert not any(D[6].id in line for line in logged)
    assert TOKEN not in caplog.text and SECRET not in caplog.text


def test_bad_alert_rules_are_named_at_load(tmp_path: Path) -> None:
    path = tmp_path / "hookflash.toml"
    path.write_text(
        '[alerts]\nenabled = true\n[[alerts.rules]]\nname = "mos"\ntype = "mos_below"\nkalls = 5\n'
    )
    with pytest.raises(
        ConfigError, match=r"alerts\.rules\.0\.mos_below\.kalls: Extra inputs are not permitted"
    ):
        load_config(path)
    path.write_text('[alerts]\n[[alerts.rules]]\nname = "x"\ntype = "offline"\n')
    with pytest.raises(ConfigError, match=r"alerts\.rules\.0\.offline\.minutes: Field required"):
        load_config(path)
