"""SIP requests for the tests and benchmarks of the SIP source: a vq-rtcpxr PUBLISH as
phones send it, and a UDP/TCP exchange with a listener."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.sim.sip_phones import publish_request
from provisioning.models import Device, Transport


def sip_device(n: int, account: str, aor: str, host: str = "127.0.0.1") -> Device:
    return Device(
        id=f"0004f2{n:06x}",
        account_id=account,
        vendor="Linphone",
        model="linphonec",
        transport=Transport.SIP,
        address=host,
        sip_aor=aor,
    )


def report(
    call_id: str = "c4ll-1",
    local: str = "sip:alice@example.org",
    kind: str = "VQSessionReport: CallTerm",
    mos: str = "4.2",
    stop: datetime | None = None,
    extra_local: str = "",
) -> bytes:
    """A report in the shape liblinphone 5.1 sends (captured from linphonec), with both
    metrics blocks."""
    # Rounded up to the second: never before the account's activation a moment ago (P4).
    end = stop or datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    start = end - timedelta(seconds=20)
    stamps = f"Timestamps: START={start:%Y-%m-%dT%H:%M:%SZ} STOP={end:%Y-%m-%dT%H:%M:%SZ}"
    lines = [
        kind,
        f"CallID: {call_id}",
        f"LocalID: {local}",
        "RemoteID: sip:bob@example.org",
        f"OrigID: {local}",
        "LocalAddr: IP=127.0.0.1 PORT=7078 SSRC=1856399188",
        "RemoteAddr: IP=127.0.0.1 PORT=7080 SSRC=2559554180",
        "LocalMetrics:",
        stamps,
        "SessionDesc: PT=0 PD=PCMU SR=8000 PLC=2",
        "JitterBuffer: JBA=3 JBN=60 JBM=80 JBX=65535",
        "PacketLoss: NLR=1.5 JDR=0.5",
        "BurstGapLoss: BLD=0 BD=0 GLD=1.5 GD=500 GMIN=16",
        "Delay: RTD=12 ESD=40 IAJ=3",
        f"QualityEst: RLQ=88 MOSLQ={mos} MOSCQ=4.1",
        *([extra_local] if extra_local else []),
        'LinphoneExt: UA="Linphonec/5.1.65"',
        "RemoteMetrics:",
        stamps,
        "SessionDesc: PT=0 PD=PCMU SR=8000 PLC=2",
        "JitterBuffer: JBA=3 JBN=60 JBM=60 JBX=65535",
        "PacketLoss: NLR=0.0 JDR=0.0",
        "Delay: RTD=12",
        "QualityEst: MOSLQ=127 MOSCQ=4.4",
        f"DialogID: {call_id};to-tag=7PCS2n6;from-tag=wjsSEbmj5",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def publish(
    port: int, body: bytes, *, sender: str = "sip:alice@example.org", via_port: int = 5062, **how: Any
) -> bytes:
    """A request as phones send it (collector.sim.sip_phones.publish_request): `how` may
    change the branch, method, event, content_type, transport, cseq or call_id."""
    return publish_request(port, body, sender, via=f"127.0.0.1:{via_port}", **how)


def udp_exchange(
    port: int, data: bytes, timeout: float = 3.0, sock: socket.socket | None = None
) -> bytes | None:
    """Send one datagram, return the first answer (None if none came in time)."""
    own = sock is None
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recvfrom(65535)[0]
        except TimeoutError:
            return None
    finally:
        if own:
            sock.close()


def status(answer: bytes | None) -> int:
    assert answer is not None, "no answer"
    return int(answer.split(b" ", 2)[1])


def header(answer: bytes, name: str) -> str | None:
    for line in answer.decode().split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None
