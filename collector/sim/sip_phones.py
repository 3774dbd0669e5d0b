"""Simulated phones that report their calls the way real ones do: RFC 6035 vq-rtcpxr
reports in SIP PUBLISH requests over UDP (an interval report while a call lasts, a
`VQSessionReport: CallTerm` when it ends), for `hookflash demo`."""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from provisioning.models import Device


@dataclass
class Metrics:
    """One direction's figures, in RFC 6035 units."""

    mos: float
    mos_cq: float
    r_factor: int
    loss_pct: float
    discard_pct: float
    jitter_ms: int
    rtt_ms: int
    jb_nominal_ms: int = 60
    jb_max_ms: int = 120

    def lines(self, start: datetime, stop: datetime, codec: tuple[int, str]) -> list[str]:
        return [
            f"Timestamps: START={start:%Y-%m-%dT%H:%M:%SZ} STOP={stop:%Y-%m-%dT%H:%M:%SZ}",
            f"SessionDesc: PT={codec[0]} PD={codec[1]} SR=8000 FD=20 PLC=3",
            f"JitterBuffer: JBA=3 JBR=2 JBN={self.jb_nominal_ms} JBM={self.jb_max_ms} JBX=65535",
            f"PacketLoss: NLR={self.loss_pct:.1f} JDR={self.discard_pct:.1f}",
            f"Delay: RTD={self.rtt_ms} ESD=40 IAJ={self.jitter_ms}",
            f"QualityEst: RLQ={self.r_factor} MOSLQ={self.mos:.1f} MOSCQ={self.mos_cq:.1f}",
        ]


def vq_report(
    kind: str,
    call_id: str,
    local_id: str,
    remote_id: str,
    start: datetime,
    stop: datetime,
    local: Metrics,
    remote: Metrics | None = None,
    codec: tuple[int, str] = (0, "PCMU"),
) -> bytes:
    """A report body: `kind` is the first line (`VQIntervalReport`, `VQSessionReport: CallTerm`)."""
    lines = [
        kind,
        f"CallID: {call_id}",
        f"LocalID: {local_id}",
        f"RemoteID: {remote_id}",
        f"OrigID: {local_id}",
    ]
    lines += ["LocalMetrics:", *local.lines(start, stop, codec)]
    if remote is not None:
        lines += ["RemoteMetrics:", *remote.lines(start, stop, codec)]
    return ("\r\n".join(lines) + "\r\n").encode()


def publish_request(
    port: int,
    body: bytes,
    sender: str,
    *,
    branch: str | None = None,
    method: str = "PUBLISH",
    event: str = "vq-rtcpxr",
    content_type: str = "application/vq-rtcpxr",
    transport: str = "UDP",
    via: str = "127.0.0.1:5062",
    cseq: int = 20,
    call_id: str | None = None,
) -> bytes:
    """A SIP request carrying `body` to a collector on 127.0.0.1:`port`, as phones send it."""
    branch = branch or "z9hG4bK" + secrets.token_hex(6)
    head = [
        f"{method} sip:collector@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport} {via};branch={branch};rport",
        f"From: <{sender}>;tag={secrets.token_hex(4)}",
        f"To: <sip:collector@127.0.0.1:{port}>",
        f"Call-ID: {call_id or secrets.token_hex(8)}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
        f"Event: {event}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "User-Agent: hookflash-sim",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.answers += 1


@dataclass
class _Call:
    id: str
    started: datetime
    peer: str
    reports: int = 0


class SimulatedSipPhones:
    """Every `period_s`, each phone in a call sends an interval report; after a few it
    hangs up (a CallTerm session report) and starts another call. One phone in four has a
    poor line (loss and jitter, MOS near 3)."""

    def __init__(
        self, devices: list[Device], collector_port: int, period_s: float = 2.0, seed: int = 11
    ) -> None:
        self.devices = [d for d in devices if d.sip_aor]
        self._port = collector_port
        self._period = period_s
        self._rng = random.Random(seed)
        self._calls: dict[str, _Call] = {}
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol = _Answers()
        self.sent = 0

    @property
    def answered(self) -> int:
        return self._protocol.answers

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: self._protocol, local_addr=("127.0.0.1", 0)
        )
        self._task = asyncio.create_task(self._run(), name="sim-sip-phones")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    async def _run(self) -> None:
        while True:
            for n, device in enumerate(self.devices):
                assert self._transport is not None
                self._transport.sendto(self._next_report(n, device), ("127.0.0.1", self._port))
                self.sent += 1
            await asyncio.sleep(self._period)

    def _metrics(self, poor: bool) -> Metrics:
        rng = self._rng
        loss = rng.uniform(2, 6) if poor else rng.uniform(0, 0.5)
        mos = max(1.0, min(4.5, (3.1 if poor else 4.3) + rng.uniform(-0.2, 0.2)))
        return Metrics(
            mos=mos,
            mos_cq=max(1.0, mos - 0.1),
            r_factor=int(20 * mos + 3),
            loss_pct=loss,
            discard_pct=loss / 3,
            jitter_ms=rng.randint(15, 40) if poor else rng.randint(1, 6),
            rtt_ms=rng.randint(120, 250) if poor else rng.randint(20, 60),
        )

    def _next_report(self, n: int, device: Device) -> bytes:
        now = datetime.now(UTC).replace(microsecond=0)
        aor = "sip:" + device.sip_aor.split()[0]
        call = self._calls.get(device.id)
        if call is None:
            call = self._calls[device.id] = _Call(
                secrets.token_hex(8), now, f"sip:{1000 + n}@pbx.demo.invalid"
            )
        call.reports += 1
        ending = call.reports >= 5
        kind = "VQSessionReport: CallTerm" if ending else "VQIntervalReport"
        start = call.started if ending else now - timedelta(seconds=self._period)
        poor = n % 4 == 3
        body = vq_report(kind, call.id, aor, call.peer, start, now, self._metrics(poor), self._metrics(poor))
        if ending:
            del self._calls[device.id]
        return publish_request(self._port, body, aor)
