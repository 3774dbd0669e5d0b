"""Differential fuzzing of collector.sources.snmp.codec against pysnmp/pyasn1, plus timings.

Every generated packet goes through ``decode_response`` and through pyasn1's BER decoder with
pysnmp's v2c Message spec and pysnmp's ``api.v2c`` accessors, and the two verdicts are compared
with the same rule as tests/unit/test_snmp_codec.py (whose oracle, generators and mutators this
script imports, so both always judge alike):

* accepted-identical: both accept, same request id / error status / index / varbinds (and types);
* rejected-both: pysnmp rejects and decode_response raises CodecError;
* rejected-by-codec-only: pysnmp accepts, the codec refuses for one of its documented subset
  limits, and the packet is verified to have that property;
* mismatch: anything else (a wrong value, or a rejection without a documented reason);
* crash: decode_response raised something other than CodecError.

Packets: fresh random valid responses (pysnmp-encoded), structural mutations of them (content,
tag, length re-encoding incl. indefinite and 5+-byte lengths, constructed strings, duplicated /
deleted / inserted TLVs), byte-level mutations (truncation, byte replace, bit flip, insert,
delete, trailing bytes, oversize lengths), some stacked, and random bytes.

Usage: python bench/fuzz_snmp_codec.py [-n 100000] [--seed 1] [--no-bench]
The last line is ``RESULT fuzz_packets=... mismatches=... crashes=...``; exit status 1 if either
count is non-zero.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "unit")]

from pyasn1.codec.ber import decoder  # noqa: E402
from pysnmp.proto import api  # noqa: E402
from test_snmp_codec import (  # noqa: E402
    CODEC_ONLY,
    RESPONSES,
    cross_check,
    encode_response,
    mutate,
    pysnmp_decode,
    pysnmp_request,
    random_junk,
    random_response,
)

from collector.sources.snmp import codec as snmp_codec  # noqa: E402
from collector.sources.snmp.codec import GetRequestTemplate, decode_response  # noqa: E402

KINDS = ("identical", "rejected-both", "codec-only", "mismatch", "crash")
POOL = 1000  # valid packets to mutate; each is also checked unmutated


def fuzz(n: int, seed: int) -> collections.Counter[str]:
    rng = random.Random(seed)
    started = time.monotonic()
    pool: list[bytes] = []
    by_kind: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    by_generator: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failures: list[tuple[str, str, bytes]] = []
    for i in range(n):
        roll = rng.random()
        if len(pool) < POOL and (i % max(1, n // POOL) == 0 or not pool):
            generator, packet = "valid-response", random_response(rng)
            pool.append(packet)
        elif roll < 0.08:
            generator, packet = random_junk(rng)
        else:
            generator, packet = mutate(rng, rng.choice(pool))
            generator = generator.split("+")[0] + ("+stacked" if "+" in generator else "")
        outcome = cross_check(packet)
        by_kind[outcome.kind] += 1
        by_generator[generator][outcome.kind] += 1
        if outcome.kind == "codec-only":
            reasons[outcome.detail] += 1
        elif outcome.kind in ("mismatch", "crash"):
            failures.append((outcome.kind, outcome.detail, packet))
    elapsed = time.monotonic() - started

    print(f"fuzz_snmp_codec: {n} packets, seed {seed}, {elapsed:.1f} s")
    print(f"  accepted-identical      {by_kind['identical']:>8}")
    print(f"  rejected-both           {by_kind['rejected-both']:>8}")
    print(
        f"  rejected-by-codec-only  {by_kind['codec-only']:>8}   (pysnmp accepts; outside the codec's subset)"
    )
    for reason in CODEC_ONLY:
        print(f"      {reasons[reason]:>8}  {reason}")
    print(f"  mismatches              {by_kind['mismatch']:>8}")
    print(f"  crashes                 {by_kind['crash']:>8}")
    print(f"  {'by generator:':<30}" + "".join(f"{k:>15}" for k in KINDS))
    for generator in sorted(by_generator):
        counts = by_generator[generator]
        print(f"    {generator:<28}" + "".join(f"{counts[k]:>15}" for k in KINDS))
    for kind, detail, packet in failures[:10]:
        print(f"  {kind.upper()}: {detail[:500]}\n    packet {packet.hex()}")
    return by_kind


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _bench_decode(title: str, packet: bytes) -> None:
    v2c = api.v2c
    assert len(decode_response(packet).varbinds) == 17 and pysnmp_decode(packet) is not None

    def cold() -> object:
        snmp_codec._oid_cache.clear()
        return decode_response(packet)

    rows = [
        ("decode_response, OID cache warm", lambda: decode_response(packet), 20000),
        ("decode_response, OID cache cleared", cold, 5000),
        ("pyasn1 decoder.decode(Message spec)", lambda: decoder.decode(packet, asn1Spec=v2c.Message()), 200),
        ("pyasn1 decode + pysnmp api to values", lambda: pysnmp_decode(packet), 200),
    ]
    print(f"micro-benchmark: {len(packet)}-byte GetResponse, 17 varbinds of {title} (µs per call)")
    for label, fn, number in rows:
        print(f"  {label:<40}{per_call_us(fn, number):10.2f}")


def bench() -> None:
    v2c = api.v2c
    _bench_decode("mixed types", RESPONSES["mixed-17"])
    counters = [
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, i), v2c.Counter32(i * 2654435761 % 2**32)) for i in range(17)
    ]
    _bench_decode("Counter32 (ifInOctets.1-17)", encode_response(counters))
    oids = [oid for oid, _ in decode_response(RESPONSES["mixed-17"]).varbinds]
    template = GetRequestTemplate(b"public", oids)
    print("micro-benchmark: GetRequest for the 17 mixed-type OIDs (µs per call)")
    for label, fn, number in [
        ("GetRequestTemplate.encode", lambda: template.encode(0x1234567), 200000),
        ("pysnmp api + pyasn1 encode, same GET", lambda: pysnmp_request(b"public", oids, 0x1234567), 200),
    ]:
        print(f"  {label:<40}{per_call_us(fn, number):10.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100000, help="packets to generate (default 100000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-bench", action="store_true", help="skip the micro-benchmark")
    args = parser.parse_args()
    counts = fuzz(args.n, args.seed)
    if not args.no_bench:
        bench()
    print(f"RESULT fuzz_packets={args.n} mismatches={counts['mismatch']} crashes={counts['crash']}")
    return 1 if counts["mismatch"] or counts["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
