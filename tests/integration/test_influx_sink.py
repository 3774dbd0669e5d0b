"""The InfluxDB v2 sink. Writes go to a real VictoriaMetrics through the InfluxDB v2 write API
(started by the suite); the InfluxDB-only calls (delete by predicate) and the status-code
handling are checked at the HTTP level against a small recording server."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from collector.config import InfluxConfig, ServiceConfig, SnmpConfig, SnmpCredential
from collector.records import Kind, TelemetryRecord
from collector.retention import load_policy
from collector.sinks.influx import InfluxSink, SinkRetry, line_protocol
from collector.sinks.sqlite_store import SqliteStore
from factories import HT812_AGENT, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import SnmpdFactory, VictoriaMetrics

POLICY = load_policy()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


def record(**changes: Any) -> TelemetryRecord:
    base: dict[str, Any] = dict(
        device_id="000b82000001",
        account_id="acct-a",
        kind=Kind.CALL_QUALITY,
        observed_at=datetime.now(UTC),
        fields={"mos": 4.12, "jitter_ms": 9, "codec": 'G7"22', "ok": True},
        retention_class="operational",
        source="snmp",
        model="HT 812",
        firmware="1.0.47.4",
    )
    return TelemetryRecord(**{**base, **changes})


def test_line_protocol_escapes_and_types() -> None:
    line = line_protocol(record())
    head, fields, stamp = line.rsplit(" ", 2)
    assert head == "call_quality,account_id=acct-a,device_id=000b82000001,firmware=1.0.47.4,model=HT\\ 812"
    assert fields == 'mos=4.12,jitter_ms=9i,codec="G7\\"22",ok=true'
    assert int(stamp) // 1_000_000_000 == int(record().observed_at.timestamp())


def test_records_arrive_in_victoriametrics_with_tags_and_values(
    tmp_path: Path, victoria: VictoriaMetrics, snmpd_factory: SnmpdFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "influx-token-not-to-leak")
    agent = snmpd_factory(HT812_AGENT)
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(interval_s=0.3, timeout_s=0.5, retries=0),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
        influx=InfluxConfig(enabled=True, url=victoria.url, token_env="TEST_INFLUX_TOKEN"),
    )
    device = snmp_device(1, "acct-a", agent.port).model_copy(update={"profile": "grandstream-ht8xx"})
    Registry(cfg.data_dir / "registry.db").import_devices([device], source="test")
    with RunningService(cfg):
        eventually(
            lambda: len(victoria.export('{__name__="call_quality_mos"}')) == 1,
            timeout=15,
            what="call quality in VictoriaMetrics",
        )
    series = {s["metric"]["__name__"]: s for s in victoria.export()}
    mos = series["call_quality_mos"]
    assert mos["metric"] == {
        "__name__": "call_quality_mos",
        "account_id": "acct-a",
        "device_id": device.id,
        "model": "HT812",
        "firmware": "1.0.47.4",
    }
    stored = SqliteStore(cfg.data_dir / "telemetry.db").query(kind="call_quality")
    assert mos["values"][: len(stored)] == [r.fields["mos"] for r in stored][: len(mos["values"])]
    assert set(mos["values"]) == {4.12}
    assert series["call_quality_jitter_ms"]["values"][0] == 9
    assert "performance_uptime_s" in series and "registration_line1_state" in series  # text kept as 0


class Recorder(ThreadingHTTPServer):
    """Answers each request with the next queued status; records path, query and body."""

    def __init__(self, statuses: list[tuple[int, dict[str, str]]]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[str, dict[str, list[str]], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                url = urllib.parse.urlsplit(self.path)
                recorder.requests.append((url.path, urllib.parse.parse_qs(url.query), body))
                status, headers = recorder.statuses.pop(0) if recorder.statuses else (204, {})
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def test_status_codes_split_reject_retry_and_keep() -> None:
    server = Recorder([(413, {}), (204, {}), (204, {}), (400, {}), (401, {}), (503, {"Retry-After": "7"})])
    sink = InfluxSink(server.url, "hookflash", "t0ken", list(POLICY.classes))
    try:
        batch = [record(device_id=f"000b820000{n:02x}") for n in range(4)]
        assert sink.write(batch) == 4  # 413: split in two halves, both accepted
        sizes = [len(body.splitlines()) for _, _, body in server.requests]
        assert sizes == [4, 2, 2]
        assert server.requests[0][1]["bucket"] == ["hookflash-operational"]
        sink.write(batch[:1])  # 400: rejected, reported, not retried forever
        assert sink.rejected == 1
        with pytest.raises(SinkRetry, match="not authorized"):
            sink.write(batch[:1])  # 401: kept by the pipeline, which retries loudly
        with pytest.raises(SinkRetry) as caught:
            sink.write(batch[:1])  # 503: retry after what the server asked
        assert caught.value.retry_after_s == 7.0
        assert "t0ken" not in str(caught.value)
    finally:
        sink.close()
        server.shutdown()


def test_erasure_deletes_by_predicate_in_every_class_bucket() -> None:
    server = Recorder([])
    sink = InfluxSink(server.url, "hookflash", "t0ken", list(POLICY.classes))
    try:
        counts = sink.erase_account("acct-a", list(POLICY.classes.values()), frozenset())
        assert counts == dict.fromkeys(POLICY.classes, -1)
        deletes = [(q["bucket"][0], body) for path, q, body in server.requests if path == "/api/v2/delete"]
        assert sorted(b for b, _ in deletes) == sorted(f"hookflash-{c}" for c in POLICY.classes)
        assert {json.loads(body)["predicate"] for _, body in deletes} == {'account_id="acct-a"'}
        server.requests.clear()
        sink.purge_since("acct-a", datetime(2026, 11, 27, tzinfo=UTC), device_id="000b82000001")
        assert len(server.requests) == len(POLICY.classes)
        purge = json.loads(server.requests[0][2])
        assert purge["predicate"] == 'account_id="acct-a" AND device_id="000b82000001"'
        assert purge["start"].startswith("2026-11-27")
    finally:
        sink.close()
        server.shutdown()
