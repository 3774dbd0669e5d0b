"""v2c informs per second, end to end: a sender process sends InformRequests (sysUpTime,
snmpTrapOID and a firmware version: two records each) with 1,000 in flight, resending one
unanswered after 0.5 s as agents do, to `hookflash run`, which acknowledges each once its
records are written to the embedded store. Timed from the first inform to the last
acknowledgement; hookflash's CPU time read from /proc.

Baseline, in the same run and the same way: a bare asyncio responder in its own process
that acknowledges every inform (the datagram with its PDU tag turned into a Response) and
does nothing else.

Usage: python bench/snmp_traps.py [--informs N] [--rounds 3]
Last line: `RESULT informs_per_s=… per_core=… baseline_per_s=… ratio_vs_baseline=…` (medians)
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from udp_load import baseline_rate, cpu_seconds, free_port, rounds, send_windowed, start_hookflash  # noqa: E402

from collector.sources.snmp.codec import _encode_int, _encode_oid, _tlv  # noqa: E402
from factories import snmp_device  # noqa: E402
from provisioning.registry import Registry  # noqa: E402

COMMUNITY = b"bench"
RESPONDER = """
import asyncio, socket, sys
class P(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a):
        at = pdu_at(d)
        self.t.sendto(d[:at] + b"\\xa2" + d[at + 1:], a)
def content(d, pos):
    n = d[pos + 1]
    if n < 0x80:
        return pos + 2, pos + 2 + n
    k = n & 0x7F
    return pos + 2 + k, pos + 2 + k + int.from_bytes(d[pos + 2:pos + 2 + k], "big")
def pdu_at(d):
    pos = content(d, 0)[0]  # into the message SEQUENCE
    pos = content(d, pos)[1]  # past the version
    return content(d, pos)[1]  # past the community: the PDU tag
async def main():
    loop = asyncio.get_running_loop()
    t, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", int(sys.argv[1])))
    t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def inform(request_id: int, version: str) -> bytes:
    """A v2c InformRequest, encoded with hookflash's own BER helpers (the decoder under
    test is a separate piece of code)."""
    varbinds = b"".join(
        _tlv(0x30, name + value)
        for name, value in (
            (_encode_oid("1.3.6.1.2.1.1.3.0"), _encode_int(360000 + request_id, 0x43)),
            (_encode_oid("1.3.6.1.6.3.1.1.4.1.0"), _encode_oid("1.3.6.1.4.1.42397.1.2.5.1")),  # TimedTrap
            (_encode_oid("1.3.6.1.4.1.42397.1.2.3.2.0"), _tlv(0x04, version.encode())),  # versionCore
        )
    )
    pdu = _tlv(0xA6, _encode_int(request_id) + _encode_int(0) + _encode_int(0) + _tlv(0x30, varbinds))
    return _tlv(0x30, _encode_int(1) + _tlv(0x04, COMMUNITY) + pdu)


def _content(message: bytes, pos: int) -> tuple[int, int]:
    """Where the TLV at `pos` holds its content, and where it ends."""
    n = message[pos + 1]
    if n < 0x80:
        return pos + 2, pos + 2 + n
    k = n & 0x7F
    return pos + 2 + k, pos + 2 + k + int.from_bytes(message[pos + 2 : pos + 2 + k], "big")


def _request_id(message: bytes) -> int:
    pos = _content(message, 0)[0]  # into the message
    pos = _content(message, _content(message, pos)[1])[1]  # past the version and the community
    start, end = _content(message, _content(message, pos)[0])  # the PDU's first INTEGER
    return int.from_bytes(message[start:end], "big", signed=True)


def stored(data: Path) -> int:
    db = sqlite3.connect(data / "telemetry.db")
    try:
        return int(db.execute("SELECT count(*) FROM telemetry WHERE kind = 'firmware'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def send_all(port: int, payloads: list[bytes]) -> tuple[float, int]:
    return send_windowed(port, payloads, list(range(1, len(payloads) + 1)), _request_id)


def hookflash_round(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        Registry(data / "registry.db").import_devices([snmp_device(1, "acct-1", port=16161)], source="bench")
        port = free_port()
        payloads = [inform(n + 1, f"1.0.{n}") for n in range(count)]
        config = (
            'data_dir = "data"\n[snmp]\nenabled = false\n'
            f'[snmp_traps]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
            '[credentials.default]\ncommunity = "bench"\n'
        )
        process = start_hookflash(work, config, b"trap and inform listener")
        try:
            cpu_before = cpu_seconds(process.pid)
            seconds, answered = send_all(port, payloads)
            cpu = cpu_seconds(process.pid) - cpu_before
            if answered < count or stored(data) < count:
                raise SystemExit(f"only {answered} of {count} acknowledged, {stored(data)} stored")
        finally:
            process.terminate()
            process.wait(30)
    return count / seconds, count / cpu


def baseline_round(count: int) -> float:
    return baseline_rate(RESPONDER, lambda _port: [inform(n + 1, f"1.0.{n}") for n in range(count)], send_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--informs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds(args.informs, args.rounds, hookflash_round, baseline_round, "informs", "informs_per_s")


if __name__ == "__main__":
    main()
