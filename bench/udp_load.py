"""What the UDP end-to-end benchmarks share (bench/sip_reports.py, bench/snmp_traps.py): a
sender that keeps a window of requests in flight and resends what goes unanswered, the CPU
time of a process, a `hookflash run` started and waited for, and rounds with medians."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

WINDOW = 1000  # requests in flight, as from 1,000 devices each waiting for its own answer
RESEND_S = 0.5  # RFC 3261 Timer E's T1; agents resend informs on a similar timer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_windowed(
    port: int,
    payloads: Sequence[bytes],
    keys: Sequence[Hashable],
    answer_key: Callable[[bytes], Hashable | None],
) -> tuple[float, int]:
    """Send `payloads` with WINDOW in flight, each resent after RESEND_S unanswered; an
    answer settles the request whose key `answer_key` finds in it. (Seconds from the first
    send to the last answer, answers.)"""
    index = {key: n for n, key in enumerate(keys)}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(0.05)
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
            key = answer_key(data) if data else None
            if key is not None and pending.pop(index.get(key, -1), None) is not None:
                answered += 1
                last_answer = time.perf_counter()
            now = time.perf_counter()
            if now >= next_check:  # (not per answer: the sender must not be the bottleneck)
                next_check = now + 0.1
                for n, at in list(pending.items()):
                    if now - at > RESEND_S:
                        sock.sendto(payloads[n], ("127.0.0.1", port))
                        pending[n] = now
    finally:
        sock.close()
    return last_answer - started, answered


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_hookflash(work: Path, config_text: str, ready: bytes) -> subprocess.Popen[bytes]:
    """`hookflash run` on `config_text`, once its log says `ready`."""
    config = work / "hookflash.toml"
    config.write_text(config_text)
    log_path = work / "hookflash.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while ready not in log_path.read_bytes():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit(f"hookflash did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return process


def start_responder(code: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", code, str(port)])
    time.sleep(1.0)
    return process


def baseline_rate(
    code: str, payloads: Callable[[int], list[bytes]], send: Callable[[int, list[bytes]], tuple[float, int]]
) -> float:
    """Requests a second a bare responder (`code`, run with its port) answers, sent by `send`."""
    port = free_port()
    process = start_responder(code, port)
    try:
        batch = payloads(port)
        seconds, answered = send(port, batch)
        if answered < len(batch):
            raise SystemExit(f"the bare responder answered {answered} of {len(batch)}")
        return len(batch) / seconds
    finally:
        process.kill()
        process.wait()


def rounds(
    count: int,
    n_rounds: int,
    hookflash_round: Callable[[int], tuple[float, float]],
    baseline_round: Callable[[int], float],
    unit: str,
    key: str,
) -> None:
    """Alternate hookflash and baseline rounds; print each, then the RESULT line of medians."""
    rates, per_core, baselines = [], [], []
    for n in range(n_rounds):
        rate, core = hookflash_round(count)
        base = baseline_round(count)
        rates.append(rate)
        per_core.append(core)
        baselines.append(base)
        print(
            f"round {n + 1}: hookflash {rate:,.0f} {unit}/s ({core:,.0f} per CPU-second), "
            f"bare responder {base:,.0f}/s"
        )
    rate, core, base = statistics.median(rates), statistics.median(per_core), statistics.median(baselines)
    print(
        f"RESULT {key}={rate:.0f} per_core={core:.0f} baseline_per_s={base:.0f} "
        f"ratio_vs_baseline={rate / base:.3f}"
    )
