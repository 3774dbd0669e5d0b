"""Hostile SIP against a running `hookflash run`: N mutated PUBLISH requests and report
bodies over UDP (bit flips, truncation, lost or doubled headers, wrong Content-Length, bare
LF, NUL bytes, 60 kB datagrams, junk values, huge numbers, NaN, broken report lines,
random bytes), a share of them over TCP. Every 500 datagrams an OPTIONS probe must be
answered within 2 s (else a hang is counted); at the end a valid report must be answered
200 and stored, the process must be alive, and its log must hold no traceback.

Usage: python bench/fuzz_sip.py [N]   (default 100,000)
Last line: `RESULT requests=… answered=… crashes=0 hangs=0 tracebacks=0 still_answers=1 valid_stored=1`
"""

from __future__ import annotations

import contextlib
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from provisioning.registry import Registry  # noqa: E402
from sip import publish, report, sip_device, status  # noqa: E402

AOR = "sip:fuzz@bench.invalid"
RATE = 2500  # requests a second
JUNK = ["", "x", "-1", "1e999", "nan", "inf", "9" * 5000, "\x00", "é" * 40, "=", ";;;", '"', "0x1F", "<>"]


def mutate(rng: random.Random, port: int) -> bytes:
    base = publish(port, report(f"fuzz-{rng.randrange(10**9)}"), sender=AOR)
    choice = rng.randrange(12)
    if choice == 0:  # flip bytes
        data = bytearray(base)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 1:
        return base[: rng.randrange(len(base))]
    if choice == 2:  # drop or double a header
        lines = base.split(b"\r\n")
        n = rng.randrange(1, 11)
        lines.insert(n, lines[n]) if rng.random() < 0.5 else lines.pop(n)
        return b"\r\n".join(lines)
    if choice == 3:
        return base.replace(
            b"Content-Length: ", b"Content-Length: " + str(rng.choice([0, 99999, -5])).encode() + b"#"
        )
    if choice == 4:
        return base.replace(b"\r\n", b"\n")
    if choice == 5:
        return base.replace(b"\r\n", b"\r\n\x00", rng.randint(1, 5))
    if choice == 6:
        return base + b"x" * rng.randint(20_000, 60_000)
    if choice == 7:  # junk values in the report
        body_at = base.index(b"\r\n\r\n") + 4
        body = base[body_at:].decode()
        for key in rng.sample(["MOSLQ", "NLR", "JBN", "RTD", "START", "STOP", "IAJ", "RLQ"], 3):
            body = body.replace(f"{key}=", f"{key}={rng.choice(JUNK)}", 1)
        return publish(port, body.encode("utf-8", "surrogatepass"), sender=AOR)
    if choice == 8:  # broken report lines
        lines = report().split(b"\r\n")
        lines[rng.randrange(len(lines))] = rng.choice(
            [b"::::", b"LocalMetrics:", b"a b c", b"\xff\xfe", b"=" * 300]
        )
        return publish(port, b"\r\n".join(lines), sender=AOR)
    if choice == 9:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
    if choice == 10:  # headers the parser must take apart
        return base.replace(
            b"Via: SIP/2.0/UDP", b"Via: " + rng.choice([b"", b"SIP/3.0/UDP", b"SIP/2.0/UDP ,,,", b'"<'])
        ).replace(b"CSeq: 20", rng.choice([b"CSeq: x", b"CSeq: 99999999999", b"CSeq:"]))
    return publish(port, report() * rng.randint(2, 40), sender=AOR)  # long and repeated


def probe(sock: socket.socket, port: int) -> bool:
    sock.sendto(publish(port, b"", method="OPTIONS"), ("127.0.0.1", port))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return False
        if b"CSeq: 20 OPTIONS" in data:
            return True
    return False


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        Registry(work / "data" / "registry.db").import_devices([sip_device(1, "acct-1", AOR)], source="fuzz")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_port:
            probe_port.bind(("127.0.0.1", 0))
            port = probe_port.getsockname()[1]
        (work / "hookflash.toml").write_text(
            'data_dir = "data"\n[snmp]\nenabled = false\n'
            f'[sip]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
        )
        log = work / "hookflash.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "collector.cli.main", "run", "-c", str(work / "hookflash.toml")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        while b"SIP listener" not in log.read_bytes():
            if process.poll() is not None:
                raise SystemExit(log.read_text())
            time.sleep(0.1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        answers: Counter[str] = Counter()
        hangs = 0
        started = time.monotonic()
        for n in range(total):
            data = mutate(rng, port)
            if n % 20 == 0:  # over TCP
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=2) as conn,
                ):
                    conn.sendall(data)
            else:
                with contextlib.suppress(OSError):  # larger than a datagram may be
                    sock.sendto(data, ("127.0.0.1", port))
            while True:
                try:
                    answer = sock.recv(65535)
                except BlockingIOError:
                    break
                answers[answer.split(b"\r\n", 1)[0].decode(errors="replace")[8:]] += 1
            ahead = started + n / RATE - time.monotonic()
            if ahead > 0:  # paced: every request must reach the listener, not the kernel's floor
                time.sleep(ahead)
            if n % 500 == 499:
                sock.setblocking(True)
                hangs += not probe(sock, port)
                sock.setblocking(False)
        seconds = time.monotonic() - started
        sock.setblocking(True)
        sock.settimeout(3)
        valid = publish(port, report("fuzz-final"), sender=AOR)
        sock.sendto(valid, ("127.0.0.1", port))
        final = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = sock.recv(65535)
            if b"CSeq: 20 PUBLISH" in data and valid.split(b"Call-ID: ")[1].split(b"\r\n")[0] in data:
                final = data
                break
        still = int(final is not None and status(final) == 200)
        time.sleep(1.0)
        db = sqlite3.connect(work / "data" / "telemetry.db")
        stored = db.execute(
            "SELECT count(*) FROM telemetry WHERE fields->>'call_id' = 'fuzz-final'"
        ).fetchone()[0]
        db.close()
        crashed = int(process.poll() is not None)
        process.terminate()
        process.wait(30)
        text = log.read_text(errors="replace")
        tracebacks = text.count("Traceback")
    print(f"{total:,} hostile requests in {seconds:.1f}s; answers: {dict(answers.most_common())}")
    print(
        f"RESULT requests={total} answered={sum(answers.values())} crashes={crashed} hangs={hangs} "
        f"tracebacks={tracebacks} still_answers={still} valid_stored={int(stored == 2)}"
    )


if __name__ == "__main__":
    main()
