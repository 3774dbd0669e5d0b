"""Alerts about hookflash's own remote sink, in a running hookflash: a server refusing the
token (401) raises `sink_unauthorized` at once and, while it lasts, `sink_down`; both are
logged and delivered signed to a real webhook receiver, without the token; both clear with
a recovery notice once the server takes the spooled records, and nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from influx_http import Recorder, Reply, Request, influx_error, no_content

from collector.config import ApiConfig, InfluxConfig, MqttConfig, ServiceConfig, SnmpConfig
from collector.config.alerts import AlertsConfig, AlertWebhook, SinkDownRule, SinkUnauthorizedRule
from collector.core.interfaces import Verdict
from collector.core.records import Kind, Observation
from collector.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from factories import snmp_device
from provisioning.registry import Registry
from receiver import WebhookReceiver
from runner import RunningService, eventually
from services import free_port

INFLUX_TOKEN, API_TOKEN, SECRET = "influx-token-not-to-leak", "sink-alerts-api-token-0123", "noc-secret"


def refuse_token(_request: Request) -> Reply:
    # A server that echoes what it was given: the token must still not travel further.
    return influx_error(401, f"unauthorized access (token {INFLUX_TOKEN} is not valid)")


def test_a_refused_token_raises_sink_alerts_that_clear_when_writes_are_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("TEST_INFLUX_TOKEN", INFLUX_TOKEN)
    monkeypatch.setenv("TEST_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("TEST_NOC_SECRET", SECRET)
    device = snmp_device(1, "acct-a")
    registered = datetime.now(UTC) - timedelta(hours=1)  # before the observations below
    Registry(tmp_path / "registry.db", clock=lambda: registered).import_devices([device], source="test")
    recorder = Recorder(refuse_token)
    with WebhookReceiver() as receiver:
        config = ServiceConfig(
            data_dir=tmp_path,
            snmp=SnmpConfig(enabled=False),
            mqtt=MqttConfig(enabled=False),
            influx=InfluxConfig(enabled=True, url=recorder.url, token_env="TEST_INFLUX_TOKEN", timeout_s=2),
            api=ApiConfig(enabled=True, port=free_port("tcp"), token_env="TEST_API_TOKEN"),
            alerts=AlertsConfig(
                enabled=True,
                interval_s=0.1,
                rules=[
                    SinkUnauthorizedRule(name="influx-auth", type="sink_unauthorized"),
                    SinkDownRule(name="influx-down", type="sink_down", minutes=0.01),  # 0.6 s
                ],
                webhooks=[AlertWebhook(name="noc", url=receiver.url, secret_env="TEST_NOC_SECRET")],
            ),
        )

        def notices(event: str) -> dict[str, dict[str, Any]]:
            return {p["rule"]: p for p in (d.json() for d in receiver.deliveries) if p["event"] == event}

        with RunningService(config) as running:
            assert running.service is not None
            now = datetime.now(UTC)
            observations = [
                Observation(device.id, Kind.SIGNAL, now - timedelta(seconds=n), {"rssi_dbm": -40 - n}, "snmp")
                for n in range(20)
            ]

            async def submit() -> list[bool]:
                intake = running.service.intake  # type: ignore[union-attr]
                return [intake.derived(o) is Verdict.QUEUED for o in observations]

            assert all(asyncio.run_coroutine_threadsafe(submit(), running.loop).result(10))
            eventually(
                lambda: set(notices("alert.firing")) == {"influx-auth", "influx-down"}, 20, "both alerts"
            )
            auth = notices("alert.firing")["influx-auth"]
            assert (auth["sink"], auth["device_id"], auth["account_id"]) == ("influx", None, None)
            assert auth["detail"]["status"] == 401 and "not authorized" in auth["detail"]["reason"]
            assert auth["detail"]["spooled_batches"] >= 1
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{running.service.api_port}",
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                timeout=10,
            )
            firing = api.get("/v1/alerts").json()
            assert {(a["rule"], a["sink"]) for a in firing} == {
                ("influx-auth", "influx"),
                ("influx-down", "influx"),
            }
            assert 'hookflash_alerts_firing{rule="influx-auth"} 1.0' in api.get("/metrics").text

            recorder.respond = no_content  # the token is fixed on the server's side
            eventually(
                lambda: set(notices("alert.resolved")) == {"influx-auth", "influx-down"}, 30, "recovery"
            )
            eventually(
                lambda: sum(len(r.lines) for r in recorder.writes() if r.lines) >= 20, 10, "the records"
            )
            time.sleep(0.5)  # more rounds: no repeat of either notice
            assert len(receiver.deliveries) == 4

    recorder.close()
    written = [line for r in recorder.writes() for line in r.lines]
    assert len([r for r in recorder.writes() if r.lines]) >= 2  # refused, then taken
    taken = [line for line in written if line.startswith("signal,")]
    assert len(set(taken)) == 20  # every record, once the server took them
    for delivery in receiver.deliveries:
        assert verify(
            SECRET.encode(),
            delivery.headers[TIMESTAMP_HEADER],
            delivery.body,
            delivery.headers[SIGNATURE_HEADER],
        )
        assert INFLUX_TOKEN not in delivery.body.decode()
    assert INFLUX_TOKEN not in caplog.text
    assert "alert influx-auth FIRING for sink influx" in caplog.text
    assert "alert influx-auth RESOLVED for sink influx" in caplog.text
