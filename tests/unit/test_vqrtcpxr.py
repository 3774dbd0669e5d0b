"""The RFC 6035 report parser: the report types, both metrics blocks, units and the
"unavailable" spellings, vendors' line variations, and grammar errors naming the line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collector.core.errors import Rejected
from collector.core.records import Received
from collector.decode.vqrtcpxr import BadReport, VqRtcpxrCodec, parse_report
from sip import report

NOW = datetime.now(UTC)
CODEC = VqRtcpxrCodec()


def decode(
    body: bytes, origin: str = "<sip:alice@example.org>;tag=1 from 127.0.0.1:5062"
) -> list[dict[str, object]]:
    item = Received("sip", origin, body, datetime.now(UTC))
    observations, refused = CODEC.decode(None, "dev", item, CODEC.locate(item))
    assert not refused, refused
    return [o.fields for o in observations]


def test_a_session_report_of_linphone_shape() -> None:
    local, remote = decode(report("c1"))
    assert local["report"] == "session" and local["call_term"] is True and local["direction"] == "local"
    assert local["mos"] == 4.2 and local["r_factor"] == 88 and local["gap_ms"] == 500
    assert "mos" not in remote and "jb_abs_max_ms" not in local  # 127 and 65535: unavailable


def test_report_types_and_an_alert() -> None:
    assert parse_report(report(kind="VQIntervalReport")).type == "interval"
    session = parse_report(report(kind="VQSessionReport"))
    assert session.type == "session" and not session.call_term
    alert = decode(report(kind="VQAlertReport: Type=MOSLQ Severity=Critical Dir=local"))[0]
    assert (alert["report"], alert["alert_type"], alert["alert_severity"]) == ("alert", "MOSLQ", "Critical")


def test_vendor_variations_lf_no_space_and_bare_pairs() -> None:
    body = (
        b"VQSessionReport : CallTerm\nCallID:abc@host\nLocalMAC: 00:04:F2:00:00:07\n"
        b"LocalMetrics:\nTimestamps:START=2026-12-01T10:00:00Z STOP=2026-12-01T10:00:30Z\n"
        b"NLR=2.5 JDR=1.0\nMOSLQ=3.9\nDelay:RTD=30 IAJ=4 x-vendor=7\nx-Unknown: foo=bar\n"
    )
    (fields,) = decode(body)
    assert (
        fields["loss_pct"] == 2.5
        and fields["mos"] == 3.9
        and fields["rtt_ms"] == 30
        and fields["jitter_ms"] == 4.0
    )
    assert fields["duration_s"] == 30 and "x-vendor" not in fields and "foo" not in fields  # P2
    assert CODEC.locate(Received("sip", "x from 10.0.0.1:5060", body, NOW)).device_id == "0004f2000007"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ((b"VQSessionReport: CallTerm", b"Hello"), "line 1: not a VQSessionReport"),
        ((b"CallID: c4ll-1\r\n", b""), "no CallID line"),
        ((b"PacketLoss: NLR=1.5 JDR=0.5", b"PacketLoss NLR 1.5"), "line 12: neither 'Name: value' nor 'k=v'"),
        ((b"Delay: RTD=12 ESD=40 IAJ=3", b"Delay: RTD=12 ESD=40 IAJ=3 junk"), "line 14: not k=v: 'junk'"),
        ((b"RemoteMetrics:", b"LocalMetrics:"), "a second LocalMetrics block"),
    ],
)
def test_grammar_errors_name_the_line(change: tuple[bytes, bytes], reason: str) -> None:
    with pytest.raises(BadReport, match=reason):
        parse_report(report().replace(*change, 1))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("PacketLoss: NLR=150", "loss_pct \\(NLR\\) 150 is outside 0..100"),
        ("QualityEst: MOSLQ=nan", "not a finite number"),
        ("Delay: RTD=1e999", "not a finite number"),
        ("Delay: RTD=soon", "not a number"),
    ],
)
def test_implausible_values_refuse_that_direction(line: str, reason: str) -> None:
    item = Received("sip", "x from 127.0.0.1:1", report(extra_local=line), datetime.now(UTC))
    observations, refused = CODEC.decode(None, "dev", item, CODEC.locate(item))
    assert [o.fields["direction"] for o in observations] == ["remote"]
    assert len(refused) == 1 and refused[0].startswith("local metrics:")
    with pytest.raises(Rejected, match=reason):
        raise Rejected(refused[0])


def test_not_utf8_and_oversized() -> None:
    with pytest.raises(BadReport, match="not UTF-8"):
        parse_report(b"VQSessionReport\n\xff\xfe")
    with pytest.raises(BadReport, match="more than 200 lines"):
        parse_report(report() + b"x-a: 1\r\n" * 300)
