"""The InfluxDB v2 sink. Writes go to a real VictoriaMetrics through the InfluxDB v2 write API
(started by the suite); the InfluxDB-only calls (delete by predicate) and the status-code
handling are checked at the HTTP level against a small recording server (influx_http)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from influx_http import Recorder, Reply, Request, influx_error, no_content, queued

from collector.config import ConfigError, InfluxConfig, ServiceConfig, SnmpConfig, SnmpCredential
from collector.core.records import Kind, TelemetryRecord
from collector.retention import load_policy
from collector.sinks.influx import InfluxSink, RejectedPoint, SinkRetry, line_protocol
from collector.sinks.influx.status import isolation_budget
from collector.sinks.sqlite import TelemetryQueries
from factories import HT812_AGENT, snmp_device, telemetry_record
from provisioning.registry import Registry
from runner import RunningService, eventually, hookflash
from services import SnmpdFactory, VictoriaMetrics, free_port

POLICY = load_policy()


def record(**changes: Any) -> TelemetryRecord:
    escapes = {"fields": {"mos": 4.12, "jitter_ms": 9, "codec": 'G7"22', "ok": True}, "model": "HT 812"}
    return telemetry_record(**{"observed_at": datetime.now(UTC), **escapes, **changes})


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
            lambda: len(victoria.export('{__name__="config_nat_traversal_1"}')) == 1,
            timeout=15,
            what="the device's config in VictoriaMetrics",
        )
    series = {s["metric"]["__name__"]: s for s in victoria.export()}
    nat = series["config_nat_traversal_1"]
    assert nat["metric"] == {
        "__name__": "config_nat_traversal_1",
        "account_id": "acct-a",
        "device_id": device.id,
        "model": "HT812",
        "firmware": "1.0.47.4",
    }
    stored = TelemetryQueries.open(cfg.data_dir / "telemetry.db").query(kind="config")
    assert nat["values"][: len(stored)] == [r.fields["nat_traversal_1"] for r in stored][: len(nat["values"])]
    assert set(nat["values"]) == {1} and series["config_network_mode"]["values"][0] == 0
    assert "performance_uptime_s" in series and "registration_line1_state" in series  # text kept as 0




def test_sink_writes_every_point_to_victoriametrics_in_posts(victoria: VictoriaMetrics) -> None:
    """Straight through the sink, no service: 12,001 points in posts of at most 5,000 lines,
    every one stored with its tags and exact value, the text field kept as a series."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    batch = [
        record(
            device_id=f"000b82{n % 50:06x}",
            account_id=f"acct-{n % 50 % 7}",
            observed_at=start + timedelta(milliseconds=n),
            fields={"mos": round(3 + n / 10_000, 4), "jitter_ms": n, "codec": "G722"},
        )
        for n in range(12_001)
    ]
    config = InfluxConfig(enabled=True, url=victoria.url, token_env="TEST_INFLUX_TOKEN")
    sink = InfluxSink(victoria.url, config.org, "t0ken", list(POLICY.classes))
    try:
        assert sink.write(batch) == 12_001
    finally:
        sink.close()
    assert (sink.posts, sink.written, sink.rejected) == (3, 12_001, 0)
    jitter = victoria.export('{__name__="call_quality_jitter_ms"}')
    assert sorted(v for s in jitter for v in s["values"]) == list(range(12_001))
    one = next(s for s in jitter if s["metric"]["device_id"] == "000b82000003")
    assert one["metric"] == {
        "__name__": "call_quality_jitter_ms",
        "account_id": "acct-3",
        "device_id": "000b82000003",
        "firmware": "1.0.47.4",
        "model": "HT 812",
    }
    assert one["values"][:3] == [3, 53, 103]
    assert one["timestamps"][0] == round((start + timedelta(milliseconds=3)).timestamp() * 1000)
    mos = {v for s in victoria.export('{__name__="call_quality_mos"}') for v in s["values"]}
    assert mos == {round(3 + n / 10_000, 4) for n in range(12_001)}
    assert len(victoria.export('{__name__="call_quality_codec"}')) == 50  # one series per device


# -- status codes, against a recording server -------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def sink_for(server: Recorder, **options: Any) -> InfluxSink:
    return InfluxSink(server.url, "hookflash", "t0ken", list(POLICY.classes), **options)


def devices(count: int, **changes: Any) -> list[TelemetryRecord]:
    return [record(device_id=f"000b82{n:06x}", **changes) for n in range(count)]


def test_posts_are_gzipped_to_the_class_bucket_in_batch_lines(recorder: Recorder) -> None:
    sink = sink_for(recorder, buckets={"operational": "noc-ops"}, batch_lines=5)
    try:
        batch = [*devices(12), record(kind=Kind.FIRMWARE, retention_class="account_lifetime")]
        assert sink.write(batch) == 13
    finally:
        sink.close()
    posts = recorder.writes()
    assert [(r.arg("bucket"), len(r.lines)) for r in posts] == [
        ("noc-ops", 5),
        ("noc-ops", 5),
        ("noc-ops", 2),
        ("hookflash-account_lifetime", 1),
    ]
    assert all(r.gzipped and r.headers["content-encoding"] == "gzip" for r in posts)
    assert {(r.arg("org"), r.arg("precision"), r.headers["authorization"]) for r in posts} == {
        ("hookflash", "ns", "Token t0ken")
    }
    assert [line for r in posts[:3] for line in r.lines] == [line_protocol(r) for r in batch[:12]]


@pytest.mark.parametrize("gzip_level", [0, 1])
def test_a_server_refusing_a_post_on_its_headers(gzip_level: int) -> None:
    """401 or 413 sent before the body is read, then the connection closed (as servers do):
    the answer still reaches the sink, which keeps the batch (401) or splits it (413)."""
    early: list[Reply] = [influx_error(401, "unauthorized access"), influx_error(413, "too large")]
    server = Recorder(early=lambda method, path: early.pop(0) if early else None)
    sink = sink_for(server, gzip_level=gzip_level)
    batch = devices(5000)
    try:
        with pytest.raises(SinkRetry) as caught:
            sink.write(batch)
        assert caught.value.status == 401 and sink.auth_failures == 1
        assert sink.write(batch) == 5000
    finally:
        sink.close()
        server.close()
    assert server.early_answers == 2
    assert [len(r.lines) for r in server.writes()] == [2500, 2500]
    assert [line for r in server.writes() for line in r.lines] == [line_protocol(r) for r in batch]


def test_gzip_can_be_turned_off(recorder: Recorder) -> None:
    sink = sink_for(recorder, gzip_level=0)
    try:
        sink.write(devices(2))
    finally:
        sink.close()
    (post,) = recorder.writes()
    assert not post.gzipped and "content-encoding" not in post.headers
    assert len(post.lines) == 2


def test_413_splits_the_post_until_the_server_takes_it() -> None:
    server = Recorder(queued((413, {}, b""), (413, {}, b"")))
    sink = sink_for(server)
    try:
        assert sink.write(devices(8)) == 8
    finally:
        sink.close()
        server.close()
    assert [len(r.lines) for r in server.writes()] == [8, 4, 2, 2, 4]
    assert sink.rejected == 0


def test_a_single_line_too_large_for_the_server_is_rejected_alone() -> None:
    def respond(request: Request) -> Reply:
        if request.path == "/api/v2/write" and len(request.body) > 400:
            return influx_error(413, "request entity too large")
        return no_content(request)

    server = Recorder(respond)
    quarantined: list[RejectedPoint] = []
    sink = sink_for(server, on_rejected=quarantined.extend)
    batch = devices(3)
    batch[1] = record(device_id=batch[1].device_id, fields={"codec": "x" * 500})
    try:
        assert sink.write(batch) == 2
    finally:
        sink.close()
        server.close()
    assert [p.record for p in quarantined] == [batch[1]]
    assert quarantined[0].reason == "HTTP 413: larger than the server accepts: request entity too large"


def refuse_lines_with(marker: str, status: int = 400) -> tuple[Any, list[Request]]:
    """A write API that refuses any post holding a line with `marker`, as InfluxDB does (400,
    JSON message naming the line); returns the responder and the list of accepted posts."""
    accepted: list[Request] = []

    def respond(request: Request) -> Reply:
        if request.path != "/api/v2/write":
            return no_content(request)
        bad = [line for line in request.lines if marker in line]
        if bad:
            return influx_error(status, f"unable to parse '{bad[0][:40]}': invalid field format")
        accepted.append(request)
        return no_content(request)

    return respond, accepted


@pytest.mark.parametrize("status", [400, 422])
def test_refused_points_are_isolated_and_quarantined_while_the_good_ones_are_written(status: int) -> None:
    respond, accepted = refuse_lines_with("BAD", status)
    server = Recorder(respond)
    quarantined: list[RejectedPoint] = []
    sink = sink_for(server, on_rejected=quarantined.extend)
    bad = {5, 6, 40}  # two neighbours and one far away
    batch = [
        record(device_id=r.device_id, fields={"codec": "BAD"}) if n in bad else r
        for n, r in enumerate(devices(64))
    ]
    try:
        assert sink.write(batch) == 61  # no exception: one bad point must not block the sink
    finally:
        sink.close()
        server.close()
    assert sorted(line for r in accepted for line in r.lines) == sorted(
        line_protocol(r) for n, r in enumerate(batch) if n not in bad
    )
    assert [p.record for p in quarantined] == [batch[n] for n in sorted(bad)]
    assert all(p.reason.startswith(f"HTTP {status}: unable to parse") for p in quarantined)
    assert all("t0ken" not in p.reason for p in quarantined)
    assert sink.rejected == 3 and sink.written == 61
    assert len(server.writes()) <= 1 + isolation_budget(64)


def test_a_post_of_only_bad_points_costs_a_bounded_number_of_requests() -> None:
    respond, accepted = refuse_lines_with("BAD")
    server = Recorder(respond)
    quarantined: list[RejectedPoint] = []
    sink = sink_for(server, on_rejected=quarantined.extend)
    try:
        assert sink.write(devices(5000, fields={"codec": "BAD"})) == 0
    finally:
        sink.close()
        server.close()
    assert not accepted
    assert len(quarantined) == 5000 and sink.rejected == 5000
    assert len({id(p.record) for p in quarantined}) == 5000  # each reported once
    assert len(server.writes()) <= 1 + isolation_budget(5000) <= 120
    whole = [p for p in quarantined if "other line(s))" in p.reason]
    assert whole  # the budget ran out: what was still refused went to the quarantine whole


def test_401_keeps_the_batch_counts_and_logs_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    server = Recorder(queued(influx_error(401, "unauthorized access"), influx_error(403, "forbidden")))
    sink = sink_for(server)
    batch = devices(3)
    try:
        with caplog.at_level(logging.ERROR, logger="collector.sinks.influx"):
            for status in (401, 403):
                with pytest.raises(SinkRetry, match="not authorized") as caught:
                    sink.write(batch)
                assert caught.value.status == status
        assert sink.auth_failures == 2 and sink.rejected == 0
        assert sink.write(batch) == 3  # the caller kept the batch; it goes through once allowed
    finally:
        sink.close()
        server.close()
    assert [len(r.lines) for r in server.writes()] == [3, 3, 3]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once a minute at most while it lasts
    assert "not authorized" in errors[0].getMessage() and "ensure-buckets" in errors[0].getMessage()
    assert "t0ken" not in caplog.text


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [(429, {"Retry-After": "7"}, 7.0), (503, {}, None), (500, {"Retry-After": "soon"}, None)],
)
def test_429_and_5xx_are_retried_with_the_servers_retry_after(
    status: int, headers: dict[str, str], expected: float | None
) -> None:
    server = Recorder(queued(influx_error(status, "slow down", headers)))
    sink = sink_for(server)
    try:
        with pytest.raises(SinkRetry) as caught:
            sink.write(devices(2))
        assert (caught.value.status, caught.value.retry_after_s) == (status, expected)
        assert "t0ken" not in str(caught.value)
        assert sink.write(devices(2)) == 2
    finally:
        sink.close()
        server.close()


def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    server = Recorder(queued(influx_error(503, "maintenance", {"Retry-After": _http_date(when)})))
    sink = sink_for(server)
    try:
        with pytest.raises(SinkRetry) as caught:
            sink.write(devices(1))
    finally:
        sink.close()
        server.close()
    assert caught.value.retry_after_s is not None and 3000 < caught.value.retry_after_s <= 3600


def _http_date(when: datetime) -> str:
    from email.utils import format_datetime

    return format_datetime(when.astimezone(UTC), usegmt=True)


def test_a_retried_batch_does_not_resend_what_was_written_or_reported() -> None:
    """Post 1 written, post 2 had a refused point, post 3 failed with 503: the retry of the
    batch sends post 3 only, and the refused point is reported once."""
    respond, accepted = refuse_lines_with("BAD")
    outage = [True]

    def flaky(request: Request) -> Reply:
        if request.path == "/api/v2/write" and "000b82000005" in request.body.decode() and outage[0]:
            outage[0] = False
            return influx_error(503, "unavailable")
        return respond(request)

    server = Recorder(flaky)
    quarantined: list[RejectedPoint] = []
    sink = sink_for(server, batch_lines=2, on_rejected=quarantined.extend)
    batch = devices(6)
    batch[2] = record(device_id=batch[2].device_id, fields={"codec": "BAD"})
    try:
        with pytest.raises(SinkRetry):
            sink.write(batch)
        assert sink.write(batch) == 5
    finally:
        sink.close()
        server.close()
    sent = [tuple(r.lines) for r in server.writes()]
    assert sent.count(tuple(line_protocol(r) for r in batch[:2])) == 1
    assert [p.record for p in quarantined] == [batch[2]]
    assert sorted(line for r in accepted for line in r.lines) == sorted(
        line_protocol(r) for n, r in enumerate(batch) if n != 2
    )


def test_an_unreachable_server_is_a_retry() -> None:
    sink = InfluxSink(f"http://127.0.0.1:{free_port('tcp')}", "hookflash", "t0ken", list(POLICY.classes))
    try:
        with pytest.raises(SinkRetry, match="cannot reach the server") as caught:
            sink.write(devices(1))
        assert caught.value.status is None
        assert not sink.healthy()
    finally:
        sink.close()


def test_from_config_names_buckets_and_checks_classes(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "t0ken")
    config = InfluxConfig(
        enabled=True, url=recorder.url, token_env="TEST_INFLUX_TOKEN", buckets={"operational": "noc-ops"}
    )
    seen: list[Sequence[RejectedPoint]] = []
    sink = InfluxSink.from_config(config, list(POLICY.classes), on_rejected=seen.append)
    try:
        assert sink.bucket("operational") == "noc-ops"
        assert sink.bucket("identifying") == "hookflash-identifying"
        assert sink.healthy()
    finally:
        sink.close()
    typo = config.model_copy(update={"buckets": {"operatonal": "noc-ops"}})
    with pytest.raises(ConfigError, match=r"unknown retention class.*'operatonal'.*operational"):
        InfluxSink.from_config(typo, list(POLICY.classes))
    shared = config.model_copy(update={"buckets": {"operational": "x", "identifying": "x"}})
    with pytest.raises(ConfigError, match="'x' would hold several retention classes"):
        InfluxSink.from_config(shared, list(POLICY.classes))


# -- erasure by predicate ------------------------------------------------------------------------


def test_erasure_deletes_by_predicate_in_every_class_bucket(recorder: Recorder) -> None:
    sink = sink_for(recorder, buckets={"operational": "noc-ops"})
    try:
        counts = sink.erase_account("acct-a", list(POLICY.classes.values()), frozenset())
        assert counts == dict.fromkeys(POLICY.classes, -1)  # the delete API reports no counts
        deletes = [r for r in recorder.requests if r.path == "/api/v2/delete"]
        assert sorted(r.arg("bucket") or "" for r in deletes) == sorted(
            sink.bucket(c) for c in POLICY.classes
        )
        assert {r.arg("org") for r in deletes} == {"hookflash"}
        assert {r.json()["predicate"] for r in deletes} == {'account_id="acct-a"'}
        assert {r.json()["start"] for r in deletes} == {"1970-01-01T00:00:00+00:00"}
        assert {r.json()["stop"] for r in deletes} == {"2100-01-01T00:00:00+00:00"}
        recorder.requests.clear()
        sink.purge_since("acct-a", datetime(2026, 11, 27, 8, 30, tzinfo=UTC), device_id="000b82000001")
        assert sorted(r.arg("bucket") or "" for r in recorder.requests) == sorted(
            sink.bucket(c) for c in POLICY.classes
        )
        purge = recorder.requests[0].json()
        assert purge["predicate"] == 'account_id="acct-a" AND device_id="000b82000001"'
        assert purge["start"] == "2026-11-27T08:30:00+00:00"
    finally:
        sink.close()


def test_a_failed_delete_is_a_retry_naming_the_bucket() -> None:
    server = Recorder(lambda request: influx_error(500, "engine: shard busy"))
    sink = sink_for(server)
    try:
        with pytest.raises(SinkRetry, match="delete in hookflash-account_lifetime failed: HTTP 500"):
            sink.erase_account("acct-a", [POLICY.classes["account_lifetime"]], frozenset())
    finally:
        sink.close()
        server.close()


def test_a_revocation_by_another_process_is_carried_to_the_remote_sink(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's deactivation reaches only the embedded store; the running service, on
    seeing the revocation, ends the account's data in InfluxDB too (delete by predicate in
    every class's bucket), and does it once."""
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "influx-token-not-to-leak")
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(enabled=False),
        influx=InfluxConfig(enabled=True, url=recorder.url, token_env="TEST_INFLUX_TOKEN"),
    )
    Registry(cfg.data_dir / "registry.db").import_devices(
        [snmp_device(1, "acct-a"), snmp_device(2, "acct-b")], source="test"
    )

    def deletes() -> list[str]:
        """Erasures of all time (a stop's purge of stragglers starts at the stop instead)."""
        requests = [r for r in recorder.requests if r.path == "/api/v2/delete"]
        erasures = [r for r in requests if r.json()["start"].startswith("1970")]
        return sorted(f"{r.arg('bucket')} {r.json()['predicate']}" for r in erasures)

    with RunningService(cfg):
        assert hookflash("accounts", "revoke", "acct-a", "--data-dir", cfg.data_dir).returncode == 0
        expected = sorted(f"hookflash-{c} account_id=\"acct-a\"" for c in POLICY.classes)
        eventually(lambda: deletes() == expected, what="the account's data deleted in every bucket")
    with RunningService(cfg):  # a restart does not repeat it
        time.sleep(0.5)
    assert deletes() == expected
