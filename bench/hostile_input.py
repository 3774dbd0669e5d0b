"""Hostile input against a running hookflash process, one source at a time.

MQTT: a real mosquitto; 100,000 hostile messages (bad bytes and JSON, huge numbers, deep
nesting, oversize payloads, implausible values and times, odd topics, unknown devices),
with a valid message after every ten. SNMP: a hostile agent answering every poll, that
first sends the poller's socket garbage, truncated answers, wrong request ids, a wrong
community, bit flips, trailing bytes, 60 kB packets, the request bounced back, and answers
from another port, and repeats answers after (100,000 such datagrams). Every valid item
must be stored exactly once, within 2 s; hookflash must neither die nor let an exception
escape a callback.

Usage: python bench/hostile_input.py [--source mqtt|snmp|all] [--hostile N]
Last lines: `RESULT source=… hostile=… valid_sent=… valid_stored=… lost=0 crashed=0 stalls=0 …`
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from hostile import main_for  # noqa: E402

if __name__ == "__main__":
    main_for(sys.argv[1:], default_hostile=100_000)
