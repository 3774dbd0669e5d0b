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
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from collector.sim.sip_phones import Metrics, publish_request, vq_report  # noqa: E402
from provisioning.registry import Registry  # noqa: E402
from sip import sip_device  # noqa: E402

PHONES = 100
WINDOW = 1000  # phones with a report in flight: each waits for its own answer
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def send_all(port: int, payloads: list[bytes]) -> tuple[float, int]:
    """Send with WINDOW requests in flight, each resent after 0.5 s unanswered (RFC 3261
    Timer E, as phones do over UDP); (seconds from the first send to the last 200, 200s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(0.05)
    by_call = {_call_id(p): n for n, p in enumerate(payloads)}
    pending: dict[int, float] = {}  # request -> when last sent
    started = time.perf_counter()
    last_answer = next_check = started
    sent = answered = 0
    try:
        while answered < len(payloads) and time.perf_counter() - last_answer < 10:
            while sent < len(payloads) and len(pending) < WINDOW:
                sock.sendto(payloads[sent], ("127.0.0.1", port))
                pending[sent] = time.perf_counter()
                sent += 1
            try:
                data = sock.recv(65535)
            except TimeoutError:
                data = b""
            if data.startswith(b"SIP/2.0 200"):
                n = by_call.get(_call_id(data), -1)
                if pending.pop(n, None) is not None:
                    answered += 1
                    last_answer = time.perf_counter()
            now = time.perf_counter()
            if now >= next_check:  # (not per answer: the sender must not be the bottleneck)
                next_check = now + 0.1
                for n, at in list(pending.items()):
                    if now - at > 0.5:
                        sock.sendto(payloads[n], ("127.0.0.1", port))
                        pending[n] = now
    finally:
        sock.close()
    return last_answer - started, answered


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored(data: Path) -> int:
    db = sqlite3.connect(data / "telemetry.db")
    try:
        return int(db.execute("SELECT count(*) FROM telemetry WHERE source = 'sip'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def hookflash_round(work: Path, count: int) -> tuple[float, float, int]:
    data = work / "data"
    Registry(data / "registry.db").import_devices(
        [sip_device(n, f"acct-{n % 10}", f"sip:phone{n}@bench.invalid") for n in range(PHONES)],
        source="bench",
    )
    port = free_port()
    config = work / "hookflash.toml"
    config.write_text(
        'data_dir = "data"\n[snmp]\nenabled = false\n'
        f'[sip]\nenabled = true\nlisten = "127.0.0.1:{port}"\ntcp = false\n'
    )
    payloads = requests(port, count)
    with (work / "hookflash.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while b"SIP listener" not in (work / "hookflash.log").read_bytes():
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"hookflash did not start:\n{(work / 'hookflash.log').read_text()[-2000:]}")
            time.sleep(0.1)
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
    return count / seconds, count / cpu, answered


def baseline_round(count: int) -> float:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", RESPONDER, str(port)])
    try:
        time.sleep(1.0)
        seconds, answered = send_all(port, requests(port, count))
        if answered < count:
            raise SystemExit(f"baseline answered {answered} of {count}")
        return count / seconds
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates, per_core, baselines = [], [], []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rate, core, _ = hookflash_round(Path(tmp), args.reports)
        base = baseline_round(args.reports)
        rates.append(rate)
        per_core.append(core)
        baselines.append(base)
        print(
            f"round {n + 1}: hookflash {rate:,.0f} reports/s ({core:,.0f} per CPU-second), "
            f"bare responder {base:,.0f}/s"
        )
    rate, core, base = statistics.median(rates), statistics.median(per_core), statistics.median(baselines)
    print(
        f"RESULT sip_reports_per_s={rate:.0f} per_core={core:.0f} baseline_per_s={base:.0f} "
        f"ratio_vs_baseline={rate / base:.3f}"
    )


if __name__ == "__main__":
    main()
