"""vq-rtcpxr reports per second, end to end: a sender process sends SIP PUBLISH requests
(one report, both directions, per request; 1,000 in flight, as from 1,000 phones) over UDP to `hookflash run`,
which answers each once its records are written to the embedded store. Timed from the
first request to the last record stored; hookflash's CPU time read from /proc.

Baseline, in the same run and the same way: a bare asyncio UDP responder in its own
process that answers every datagram with `200 OK` and its Call-ID and does nothing else
(the floor of answering SIP in Python on this machine).

Usage: python bench/sip_reports.py [--reports N] [--rounds 3]
Last line: `RESULT sip_reports_per_s=… per_core=… baseline_per_s=… ratio_vs_baseline=…` (medians)
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from udp_load import baseline_rate, cpu_seconds, free_port, rounds, send_windowed, start_hookflash  # noqa: E402

from collector.sim.sip_phones import Metrics, publish_request, vq_report  # noqa: E402
from provisioning.registry import Registry  # noqa: E402
from sip import sip_device  # noqa: E402

PHONES = 100
RESPONDER = """
import asyncio, socket, sys
class P(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a):
        i = d.find(b"\\r\\nCall-ID: ")
        call = d[i:d.find(b"\\r\\n", i + 2)]
        self.t.sendto(b"SIP/2.0 200 OK" + call + b"\\r\\nContent-Length: 0\\r\\n\\r\\n", a)
async def main():
    loop = asyncio.get_running_loop()
    t, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", int(sys.argv[1])))
    t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # as hookflash
    await asyncio.Event().wait()
asyncio.run(main())
"""


def requests(port: int, count: int) -> list[bytes]:
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    good = Metrics(4.3, 4.2, 88, 0.2, 0.1, 3, 40)
    out = []
    for n in range(count):
        aor = f"sip:phone{n % PHONES}@bench.invalid"
        body = vq_report(
            "VQIntervalReport",
            f"call-{n}",
            aor,
            "sip:peer@bench.invalid",
            now - timedelta(seconds=5),
            now,
            good,
            good,
        )
        out.append(publish_request(port, body, aor, via=f"127.0.0.1:{5062 + n % 1000}"))
    return out


def _call_id(message: bytes) -> bytes:
    start = message.find(b"\r\nCall-ID: ") + 11
    return message[start : message.find(b"\r\n", start)]


def stored(data: Path) -> int:
    db = sqlite3.connect(data / "telemetry.db")
    try:
        return int(db.execute("SELECT count(*) FROM telemetry WHERE source = 'sip'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def send_all(port: int, payloads: list[bytes]) -> tuple[float, int]:
    def answered(data: bytes) -> bytes | None:
        return _call_id(data) if data.startswith(b"SIP/2.0 200") else None

    return send_windowed(port, payloads, [_call_id(p) for p in payloads], answered)


def hookflash_round(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        devices = [sip_device(n, f"acct-{n % 10}", f"sip:phone{n}@bench.invalid") for n in range(PHONES)]
        Registry(data / "registry.db").import_devices(devices, source="bench")
        port = free_port()
        payloads = requests(port, count)
        config = 'data_dir = "data"\n[snmp]\nenabled = false\n'
        config += f'[sip]\nenabled = true\nlisten = "127.0.0.1:{port}"\ntcp = false\n'
        process = start_hookflash(work, config, b"SIP listener")
        try:
            cpu_before = cpu_seconds(process.pid)
            started = time.perf_counter()
            _, answered = send_all(port, payloads)
            while stored(data) < 2 * count and time.perf_counter() - started < 120:
                time.sleep(0.05)
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(process.pid) - cpu_before
            if stored(data) < 2 * count or answered < count:
                raise SystemExit(f"only {answered} answered and {stored(data)} of {2 * count} records stored")
        finally:
            process.terminate()
            process.wait(30)
    return count / seconds, count / cpu


def baseline_round(count: int) -> float:
    return baseline_rate(RESPONDER, lambda port: requests(port, count), send_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds(args.reports, args.rounds, hookflash_round, baseline_round, "reports", "sip_reports_per_s")


if __name__ == "__main__":
    main()
