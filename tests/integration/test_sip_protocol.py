"""The SIP source against a running service, over real UDP and TCP sockets: responses as
RFC 3261 has them, retransmissions answered alike and stored once, the wrong event, body
type or method refused with the right code, malformed requests and reports, unknown
phones and stopped accounts (P1, P4)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs import make_tls_files
from collector.config import ServiceConfig, SnmpConfig
from collector.config.sip import SipConfig
from collector.sinks.sqlite import TelemetryQueries
from provisioning.receipts import Action, ReceiptStatus
from provisioning.registry import Registry
from runner import RunningService, eventually
from sip import header, publish, report, sip_device, status, udp_exchange

ALICE, CAROL = "sip:alice@example.org", "sip:carol@example.org"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, Path]]:
    data = tmp_path_factory.mktemp("sip") / "data"
    registry = Registry(data / "registry.db")
    registry.import_devices(
        [sip_device(1, "acct-1", ALICE), sip_device(2, "acct-2", CAROL + " sip:carol@desk.example.org")],
        source="test",
    )
    registry.close()
    cfg = ServiceConfig(
        data_dir=data,
        snmp=SnmpConfig(enabled=False),
        sip=SipConfig(enabled=True, listen="127.0.0.1:0"),
    )
    with RunningService(cfg) as service:
        yield service, data


def port(running: tuple[RunningService, Path], transport: str = "udp") -> int:
    service = running[0].service
    assert service is not None
    return int(service.sources["sip"].ports[transport])  # type: ignore[attr-defined]


def records(data: Path, call_id: str) -> list[dict[str, object]]:
    with TelemetryQueries.open(data / "telemetry.db") as store:
        found = store.query(kind="call_quality")
    return [r.fields | {"device_id": r.device_id} for r in found if r.fields.get("call_id") == call_id]


def test_a_report_is_answered_200_with_the_request_s_headers_and_stored_per_direction(running) -> None:  # type: ignore[no-untyped-def]
    request = publish(port(running), report("call-200"))
    answer = udp_exchange(port(running), request)
    assert status(answer) == 200
    assert answer is not None
    sent = request.decode().split("\r\n")
    for name in ("Via", "From", "Call-ID", "CSeq"):
        value = next(line.split(": ", 1)[1] for line in sent if line.startswith(name + ":"))
        assert header(answer, name) == value, name
    to = header(answer, "To")
    assert to is not None and to.startswith("<sip:collector@127.0.0.1:") and ";tag=" in to
    assert header(answer, "SIP-ETag") and header(answer, "Content-Length") == "0"
    eventually(lambda: len(records(running[1], "call-200")) == 2, what="both directions stored")
    by_direction = {r["direction"]: r for r in records(running[1], "call-200")}
    local, remote = by_direction["local"], by_direction["remote"]
    assert (
        local["device_id"] == "0004f2000001" and local["report"] == "session" and local["call_term"] is True
    )
    assert (local["mos"], local["mos_cq"], local["r_factor"]) == (4.2, 4.1, 88)
    assert (local["loss_pct"], local["discard_pct"], local["jitter_ms"], local["rtt_ms"]) == (
        1.5,
        0.5,
        3.0,
        12,
    )
    assert (local["jb_nominal_ms"], local["jb_max_ms"], local["codec"], local["duration_s"]) == (
        60,
        80,
        "PCMU",
        20,
    )
    assert "jb_abs_max_ms" not in local  # JBX=65535: unavailable
    assert "mos" not in remote and remote["mos_cq"] == 4.4  # MOSLQ=127: unavailable
    assert local["remote_id"] == "sip:bob@example.org"
    # the fleet views' MOS of the device is what it heard itself, not what its peer heard
    db = sqlite3.connect(running[1] / "telemetry.db")
    try:
        (mos,) = db.execute("SELECT mos FROM device_state WHERE device_id = '0004f2000001'").fetchone()
    finally:
        db.close()
    assert mos == 4.2


def test_a_retransmission_gets_the_same_answer_and_is_stored_once(running) -> None:  # type: ignore[no-untyped-def]
    body = report("call-again", kind="VQIntervalReport")
    request = publish(port(running), body, branch="z9hG4bK-same-1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        answers = [udp_exchange(port(running), request, sock=sock) for _ in range(3)]
    assert status(answers[0]) == 200 and answers[0] == answers[1] == answers[2]
    eventually(lambda: len(records(running[1], "call-again")) == 2, what="stored")
    # a new transaction with the very same report (a phone that resends it) is stored once too
    assert (
        status(
            udp_exchange(port(running), publish(port(running), body))
        )
        == 200
    )
    assert len(records(running[1], "call-again")) == 2


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        ({"event": "presence"}, 489, ("Allow-Events", "vq-rtcpxr")),
        ({"content_type": "application/json"}, 415, ("Accept", "application/vq-rtcpxr")),
        ({"method": "INVITE"}, 405, ("Allow", "PUBLISH, OPTIONS")),
        ({"method": "OPTIONS"}, 200, ("Allow", "PUBLISH, OPTIONS")),
    ],
)
def test_other_events_bodies_and_methods(
    running, change: dict[str, str], code: int, named: tuple[str, str]
) -> None:  # type: ignore[no-untyped-def]
    answer = udp_exchange(port(running), publish(port(running), report("call-other"), **change))  # type: ignore[arg-type]
    assert status(answer) == code
    assert answer is not None and header(answer, named[0]) == named[1]
    assert records(running[1], "call-other") == []


def test_malformed_requests_get_400_naming_what_is_wrong(running) -> None:  # type: ignore[no-untyped-def]
    good = publish(port(running), report("call-bad-cseq"))
    bad_cseq = good.replace(b"CSeq: 20 PUBLISH", b"CSeq: 20 SUBSCRIBE")
    answer = udp_exchange(port(running), bad_cseq)
    assert status(answer) == 400 and b"CSeq method SUBSCRIBE" in (answer or b"")
    short = good.replace(b"Content-Length: ", b"Content-Length: 9")
    assert status(udp_exchange(port(running), short)) == 400
    assert udp_exchange(port(running), b"GARBAGE\r\n\r\n", timeout=0.5) is None  # nothing to answer to
    assert status(udp_exchange(port(running), publish(port(running), report("call-ok-after")))) == 200


def test_a_report_that_breaks_the_grammar_is_quarantined_with_the_line(running) -> None:  # type: ignore[no-untyped-def]
    body = report("call-broken").replace(b"PacketLoss: NLR=1.5 JDR=0.5", b"PacketLoss NLR 1.5")
    answer = udp_exchange(port(running), publish(port(running), body))
    assert status(answer) == 400

    def quarantined() -> list[str]:
        with TelemetryQueries.open(running[1] / "telemetry.db") as store:
            return [q.reason for q in store.quarantined()]

    eventually(lambda: any("vq-rtcpxr line 12: neither" in r for r in quarantined()), what="its line")
    assert records(running[1], "call-broken") == []


def test_an_implausible_value_quarantines_that_direction_only(running) -> None:  # type: ignore[no-untyped-def]
    answer = udp_exchange(port(running), publish(port(running), report("call-mos9", mos="9.9")))
    assert status(answer) == 200
    eventually(lambda: len(records(running[1], "call-mos9")) == 1, what="the remote direction")
    assert records(running[1], "call-mos9")[0]["direction"] == "remote"


def test_tcp_carries_several_requests_and_refuses_an_oversized_one(running) -> None:  # type: ignore[no-untyped-def]
    tcp = port(running, "tcp")
    with socket.create_connection(("127.0.0.1", tcp), timeout=3) as conn:
        for n in range(2):
            conn.sendall(publish(tcp, report(f"call-tcp-{n}"), transport="TCP"))
        answers = b""
        while answers.count(b"SIP/2.0 200 OK") < 2:
            chunk = conn.recv(65535)
            assert chunk, answers
            answers += chunk
    eventually(lambda: all(len(records(running[1], f"call-tcp-{n}")) == 2 for n in range(2)), what="stored")
    with socket.create_connection(("127.0.0.1", tcp), timeout=3) as conn:
        huge = publish(tcp, b"x" * 20000, transport="TCP")
        conn.sendall(huge[: huge.index(b"\r\n\r\n") + 4])
        assert status(conn.recv(65535)) == 413
        assert conn.recv(10) == b""  # and closed


def test_an_unknown_phone_is_answered_but_nothing_is_kept(running) -> None:  # type: ignore[no-untyped-def]
    service = running[0].service
    assert service is not None
    before = service.stats.dropped_not_provisioned
    answer = udp_exchange(
        port(running), publish(port(running), report("call-stranger"), sender="sip:mallory@example.net")
    )
    assert status(answer) == 200
    eventually(lambda: service.stats.dropped_not_provisioned == before + 1, what="counted")
    assert records(running[1], "call-stranger") == []


def test_a_second_address_of_record_and_a_stopped_account(running) -> None:  # type: ignore[no-untyped-def]
    sip = port(running)
    sender = "sip:carol@desk.example.org"
    assert status(udp_exchange(sip, publish(sip, report("call-carol", local=sender), sender=sender))) == 200
    eventually(lambda: len(records(running[1], "call-carol")) == 2, what="carol's report")
    service = running[0].service
    assert service is not None
    receipt, _ = service.deactivator.request(Action.REVOKE, "acct-2", reason="test")  # as billing would
    done = asyncio.run_coroutine_threadsafe(service.deactivator.process(receipt), running[0].loop).result(15)
    assert done.status is ReceiptStatus.DONE
    assert not service.gate.account_active("acct-2")
    answer = udp_exchange(sip, publish(sip, report("call-carol-after", local=sender), sender=sender))
    assert status(answer) == 200  # answered, so the phone does not retry forever
    assert records(running[1], "call-carol-after") == []
    # ended with the account (P5): call quality is folded into aggregates without identifiers
    assert records(running[1], "call-carol") == []


def test_tls_for_sips(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path / "tls")
    data = tmp_path / "data"
    registry = Registry(data / "registry.db")
    registry.import_devices([sip_device(1, "acct-1", ALICE)], source="test")
    registry.close()
    sip = SipConfig(
        enabled=True,
        listen="127.0.0.1:0",
        tls_listen="127.0.0.1:0",
        tls_cert=files.server_cert,
        tls_key=files.server_key,
    )
    cfg = ServiceConfig(data_dir=data, snmp=SnmpConfig(enabled=False), sip=sip)
    with RunningService(cfg) as service:
        assert service.service is not None
        tls = int(service.service.sources["sip"].ports["tls"])  # type: ignore[attr-defined]
        context = ssl.create_default_context(cafile=str(files.ca_cert))
        with (
            socket.create_connection(("127.0.0.1", tls), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            conn.sendall(publish(tls, report("call-tls"), transport="TLS"))
            assert status(conn.recv(65535)) == 200
        eventually(lambda: len(records(data, "call-tls")) == 2, what="stored over TLS")
        with socket.create_connection(("127.0.0.1", tls), timeout=3) as plain:  # no TLS: no SIP
            plain.sendall(publish(tls, report("call-plain"), transport="TCP"))
            try:
                answer = plain.recv(100)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"SIP/2.0")
    assert records(data, "call-plain") == []
