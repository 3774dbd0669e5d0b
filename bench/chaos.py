"""Crash consistency: hookflash killed with SIGKILL at random moments (20 by default) across
ingest of a QoS 1 stream, spool replay to VictoriaMetrics, retention sweeps and the
erasure of revoked accounts, and restarted each time (tests/chaos.py says exactly how).

Usage: python bench/chaos.py [--kills N] [--rate MSG_PER_S] [--seed S]
Last line: `RESULT kills=… acked=… kept=… lost=0 duplicated=0 resurrected=0`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from chaos import run  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run(Path(tmp), kills=args.kills, rate=args.rate, seed=args.seed)
    for moment in outcome.moments:
        print(moment)
    print(
        f"{outcome.kills} kills in {outcome.seconds:.0f}s; "
        f"{outcome.acked:,} messages acknowledged by the broker, "
        f"{outcome.kept_expected:,} of accounts still active; SQLite: {outcome.sqlite_missing} missing, "
        f"{outcome.sqlite_duplicates} twice; VictoriaMetrics: {outcome.remote_missing} missing, "
        f"{outcome.remote_duplicates} twice; {outcome.resurrected} records of revoked accounts left"
    )
    print(outcome.result())
