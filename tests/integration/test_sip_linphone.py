"""A real call between two real phones (Debian's linphonec, liblinphone 5.1) on loopback,
both sending RFC 6035 vq-rtcpxr reports to a running hookflash: interval reports during
the call and a CallTerm session report at its end, from both sides, each stored per
direction with values that fit what the call really was."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from collector.config import ServiceConfig, SnmpConfig
from collector.config.sip import SipConfig
from collector.core.records import TelemetryRecord
from collector.sinks.sqlite import TelemetryQueries
from linphone import Call
from provisioning.registry import Registry
from runner import RunningService, eventually
from sip import sip_device

CALL_S = 12


def test_a_linphone_call_is_reported_by_both_phones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = Registry(data / "registry.db")
    registry.import_devices(
        [sip_device(1, "acct-a", "sip:a@127.0.0.1"), sip_device(2, "acct-b", "sip:b@127.0.0.1")],
        source="test",
    )
    registry.close()
    cfg = ServiceConfig(
        data_dir=data, snmp=SnmpConfig(enabled=False), sip=SipConfig(enabled=True, listen="127.0.0.1:0")
    )
    with RunningService(cfg) as running:
        assert running.service is not None
        port = running.service.sources["sip"].ports["udp"]  # type: ignore[attr-defined]
        with Call(tmp_path / "phones", port, CALL_S, interval_s=5) as call:
            pass

        def stored() -> list[TelemetryRecord]:
            with TelemetryQueries.open(data / "telemetry.db") as store:
                return [r for r in store.query(kind="call_quality") if r.source == "sip"]

        def session_reports() -> set[tuple[str, str]]:
            return {
                (r.device_id, str(r.fields["direction"])) for r in stored() if r.fields["report"] == "session"
            }

        eventually(
            lambda: len(session_reports()) == 4,
            timeout=20,
            what="both phones' CallTerm reports, both directions",
        )
    records = stored()
    phones = {"0004f2000001": "sip:b@127.0.0.1", "0004f2000002": "sip:a@127.0.0.1"}  # device -> its peer
    assert {r.device_id for r in records} == set(phones)
    assert len({r.fields["call_id"] for r in records}) == 1  # one call, seen from both ends
    started = datetime.fromtimestamp(call.started, UTC).replace(microsecond=0)
    for device in phones:
        mine = [r for r in records if r.device_id == device]
        kinds = [r.fields["report"] for r in mine if r.fields["direction"] == "local"]
        assert kinds.count("session") == 1 and kinds.count("interval") >= 1, kinds
        for r in mine:
            f = r.fields
            assert str(f["remote_id"]).startswith(phones[device]), f
            assert f["codec"] == "PCMU" and f["sample_rate"] == 8000, f
            assert started.timestamp() - 2 <= r.observed_at.timestamp() <= call.ended + 5, (r.observed_at, f)
            assert 0 <= int(f["duration_s"]) <= CALL_S + 3, f
            # a loopback call: no loss to speak of, short delays, good quality
            assert (
                0.0 <= float(f.get("loss_pct", 0)) <= 5.0 and 0.0 <= float(f.get("discard_pct", 0)) <= 5.0
            ), f
            assert 0 <= int(f.get("rtt_ms", 0)) < 200 and 0 <= int(f.get("jb_nominal_ms", 0)) <= 500, f
            assert 3.0 <= float(f.get("mos", 4)) <= 5.0 and 3.0 <= float(f.get("mos_cq", 4)) <= 5.0, f
            if f["report"] == "session":
                assert f["call_term"] is True, f
            # the remote direction holds what RTCP XR brought in time; RTT and the jitter buffer's
            # figures come when liblinphone has them (checked above when present)
            if f["report"] == "session" and f["direction"] == "local":
                assert {"loss_pct", "discard_pct", "jb_adaptive"} <= f.keys(), f
                assert "mos" in f or "mos_cq" in f, f
