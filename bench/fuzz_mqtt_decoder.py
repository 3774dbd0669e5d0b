"""Fuzz the MQTT payload decoder with generated hostile payloads.

Every payload must either decode to an observation whose fields are exactly the profile's
declared fields with finite values of the declared types, or be rejected with
Rejected carrying a reason. Anything else (another exception, a NaN, an
undeclared field, a hang) is a failure. Payloads: random bytes, invalid UTF-8, JSON with
wrong types, NaN/Infinity, huge numbers, deep nesting, oversized bodies, timestamps far
in the future or past, contradicting device ids, and mutations of valid payloads.

Usage: python bench/fuzz_mqtt_decoder.py [N] [--seed S]   (default N = 100,000)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from datetime import UTC, datetime

from collector.core.errors import Rejected
from collector.decode.mqtt import decode_mqtt
from collector.profiles import load_profiles

PROFILE = load_profiles().get("yealink-t5x")
DEVICE = "805ec0123456"
KINDS = [
    "signal",
    "registration",
    "call_quality",
    "performance",
    "firmware",
    "inventory",
    "diagnostic",
    "nope",
]
VALID = {
    "signal": {"wifi": {"rssi": -55, "channel": 36}},
    "registration": {"sip": {"state": "REG_OK"}},
    "call_quality": {"call": {"mos": 4.1, "jitter_ms": 12, "loss_pct": 0.3, "codec": "G722"}},
    "performance": {"uptime_s": 3600},
    "firmware": {"firmware": {"version": "96.86.0.118"}},
    "inventory": {"model": "T54W", "hw_version": "1.0.0.4"},
    "diagnostic": {"log": "SIP REGISTER rtt=40ms"},
    "nope": {},
}
WEIRD = [
    None,
    True,
    "x" * 5000,
    -(2**70),
    2**70,
    1e308,
    -1e308,
    "NaN",
    [],
    {},
    {"a": [1, {"b": 2}]},
    "\udcff",
]


def payload(rng: random.Random, kind: str, now: float) -> bytes:
    choice = rng.randrange(12)
    if choice == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if choice == 1:
        return b"\xff\xfe" + rng.randbytes(20)
    if choice == 2:
        return b"[" * rng.randrange(10, 3000) + b"]" * rng.randrange(0, 3000)
    if choice == 3:
        return b'{"a":' * rng.randrange(10, 200) + b"1" + b"}" * rng.randrange(0, 200)
    if choice == 4:
        return json.dumps({"ts": now, "pad": "y" * rng.randrange(60_000, 70_000)}).encode()
    doc = json.loads(json.dumps(VALID[kind]))
    if choice == 5:
        doc["ts"] = rng.choice([now + 10**9, now - 10**9, -1.0, 1e300, "soon", None, now - 3600])
    elif choice == 6:
        doc["device_id"] = rng.choice([DEVICE, "00:11:22:33:44:55", 12, None])
    elif choice in (7, 8):
        target = doc
        while isinstance(target, dict) and target and rng.random() < 0.7:
            key = rng.choice(list(target))
            if not isinstance(target[key], dict):
                target[key] = rng.choice(WEIRD)
                break
            target = target[key]
    elif choice == 9:
        text = json.dumps(doc).replace("36", rng.choice(["NaN", "Infinity", "-Infinity", "1e999"]))
        return text.encode()
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if choice == 10 and raw:
        pos = rng.randrange(len(raw))
        raw = raw[:pos] + bytes([rng.randrange(256)]) + raw[pos + 1 :]
    return raw


def check(kind: str, body: bytes, received: datetime) -> str:
    try:
        obs = decode_mqtt(PROFILE, DEVICE, kind, body, received)
    except Rejected as exc:
        assert exc.reason, "rejection without a reason"
        return "rejected"
    declared = {s.field: s for s in PROFILE.mqtt if s.kind.value == kind}
    assert obs.fields and set(obs.fields) <= set(declared), (
        f"undeclared fields {set(obs.fields) - set(declared)}"
    )
    for name, value in obs.fields.items():
        assert not (isinstance(value, float) and not math.isfinite(value)), f"{name} = {value}"
    return "decoded"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    for _ in range(args.n):
        kind = rng.choice(KINDS)
        received = datetime.now(UTC)
        body = payload(rng, kind, received.timestamp())
        try:
            outcomes[check(kind, body, received)] += 1
        except Exception as exc:  # every other exception is a finding
            outcomes["failed"] += 1
            if len(failures) < 10:
                failures.append(f"{kind} {body[:80]!r}: {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    print(f"{args.n:,} payloads in {elapsed:.1f}s: {dict(outcomes)}")
    for failure in failures:
        print("  FAILURE", failure)
    print(
        f"RESULT fuzz_payloads={args.n} decoded={outcomes['decoded']} rejected={outcomes['rejected']} "
        f"failures={outcomes['failed']}"
    )
    if outcomes["failed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
