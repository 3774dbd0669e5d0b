"""Where the time of one MQTT message or one SNMP poll goes, in µs of CPU per stage.

The workload runs in a child process under py-spy (`pip install py-spy`), sampling every
thread at 1,000 Hz; a sample counts for the stage of the innermost frame that names one
(the table below), so a stage's figure is its own time, not its callees'. Samples of the
threads the bench itself runs (publishing the backlog, starting agents) are left out:
only the service's event loop thread and its writer threads are counted. A stage's µs per
item = its samples / 1,000 Hz / the items handled in the run.

- mqtt: the backlog of bench/mqtt_ingest.py (100 device topics, ~120-byte JSON), QoS 0,
  MQTT 5, drained by a running collector into the embedded SQLite store.
- snmp: the polling of bench/snmp_poll.py (1,000 HT812s on four snmpd agents, 21 OIDs in
  one GET), into the embedded SQLite store; items are polls.

py-spy adds its own cost (the figures are slower than an unprofiled run's): read the
shares, and the µs as an upper bound.

Usage: python bench/profile_stages.py mqtt|snmp [--items N | --seconds S]
RESULT: per_item_us (all stages) and <stage>_us for each stage.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATE_HZ = 1000

# (stage, frame names that belong to it): the innermost frame found decides; within a
# frame, the first stage that names it.
Stages = list[tuple[str, tuple[str, ...]]]
# From the intake to the store: the same for every source.
_INTAKE_TO_STORE: Stages = [
    ("intake bookkeeping", ("Intake.receive", "Intake._admit", "Intake.derived", "ProfileResolver.")),
    (
        "gate",
        (
            "Gate.account_active",
            "Gate.admits",
            "Gate.allows_kind",
            "Gate.observed_while_active",
            "Gate.device",
            "Gate.allowed_kinds",
        ),
    ),
    ("tag, change detection", ("Tagger.", "scrubbed", "ChangeDetector.")),
    ("validate (pydantic)", ("BaseModel.",)),
    ("queue", ("Pipeline.put", "Pipeline._put", "Pipeline.has_room", "_Backlog.", "Intake.nearly_full")),
    ("writer: gate re-check", ("Pipeline._write_allowed", "Gate.allows")),
    ("writer: batch to JSON", ("dumps", "JSONEncoder.")),
    ("SQLite insert + index triggers", ("SqliteSink.write",)),
    ("SQLite commit", ("transaction",)),
    (
        "event loop, threads",
        (
            "BaseEventLoop.",
            "Handle._run",
            "_worker",
            "call_soon_threadsafe",
            "_write_to_self",
            "Future.",
            "Pipeline._drain",
            "Pipeline._write",
            "_run_once",
            "select",
            "Selector",
        ),
    ),
]
STAGES: dict[str, Stages] = {
    "mqtt": [
        ("socket read, MQTT framing", ("BufferedClient.", "plain_publish", "Client._")),
        ("hand-over to the intake", ("MqttSubscriber._on_plain", "MqttSubscriber._read")),
        ("locate the device", ("MqttJsonCodec.locate", "Intake._device", "Gate.by_address")),
        ("JSON parse", ("parse_payload", "JSONDecoder.")),
        (
            "decode fields, convert, ts",
            (
                "decode_mqtt",
                "convert",
                "_observed_at",
                "_lookup",
                "_specs",
                "_in_range",
                "_integer",
                "MqttJsonCodec.decode",
                "sha256",
            ),
        ),
        *_INTAKE_TO_STORE,
    ],
    "snmp": [
        ("schedule polls", ("SnmpPoller._tick", "SnmpPoller._start_poll", "SnmpPoller._due_kinds", "Task.")),
        ("encode request", ("GetRequestTemplate.", "_encode")),
        ("socket send / receive", ("sendto", "_SelectorDatagramTransport.", "_read_ready", "V2cClient.")),
        (
            "decode BER response",
            (
                "decode_response",
                "_decode",
                "_header",
                "_oid",
                "_value",
                "_integer",
                "_long_length",
                "_oid_text",
            ),
        ),
        ("poll bookkeeping", ("SnmpPoller.", "FastGetter.", "DeviceState", "_reachability")),
        ("decode fields, convert", ("decode_snmp", "decode_table", "SnmpCodec.", "convert", "_in_range")),
        *_INTAKE_TO_STORE,
    ],
}
SERVICE_THREADS = ("BaseEventLoop.run_forever", "_worker")  # the loop, the writer's executor
# Leaf frames of a thread that waits (py-spy samples them on this VM): not CPU time.
IDLE = ("_worker (concurrent/futures/thread.py:81)", "EpollSelector.select", "Condition.wait")
START = ("Service.start", "tune_gc", "RunningService.")  # once per run: reported, not per item


def child(workload: str, items: int, seconds: float, report: Path) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "tests"))
    work = Path(tempfile.mkdtemp(prefix=f"hookflash-stages-{workload}-"))
    if workload == "mqtt":
        import mqtt_ingest as bench

        from factories import mqtt_device
        from services import Mosquitto

        topics = [mqtt_device(n, "x").address for n in range(bench.PHONES)]
        broker = Mosquitto(
            work / "mosquitto", extra=["queue_qos0_messages true", "max_inflight_messages 1000"]
        ).start()
        try:
            rate = bench.hookflash(broker, work, topics, items, 0, "5", "sqlite")["rate"]
        finally:
            broker.stop()
        done = {"items": items, "rate": rate}
    else:
        import snmp_poll as bench

        from factories import HT812_AGENT
        from services import Snmpd

        agents = [Snmpd(work / f"snmpd{i}", overrides=HT812_AGENT).start() for i in range(4)]
        try:
            side = bench.hookflash_rate(work, agents, 1000, seconds)
        finally:
            for agent in agents:
                agent.stop()
        # Every poll of the run was profiled (warm-up included): count them all, each one
        # `performance` record (bench/snmp_poll.py counts polls the same way).
        with sqlite3.connect(work / "hookflash" / "telemetry.db") as db:
            polls = db.execute("SELECT count(*) FROM telemetry WHERE kind = 'performance'").fetchone()[0]
        done = {"items": polls, "rate": side.per_s}
    report.write_text(json.dumps(done))
    shutil.rmtree(work, ignore_errors=True)


def stage_of(frames: list[str], stages: Stages) -> str | None:
    for frame in reversed(frames):
        name = frame.split(" (", 1)[0]
        for stage, names in stages:
            if any(name.startswith(n) or name == n.rstrip(".") for n in names):
                return stage
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(STAGES))
    parser.add_argument("--items", type=int, default=200_000, help="mqtt: messages in the backlog")
    parser.add_argument("--seconds", type=float, default=10.0, help="snmp: seconds of polling measured")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.workload, args.items, args.seconds, args.report)
        return
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("bench/profile_stages.py needs py-spy: pip install py-spy")
    out = Path(tempfile.mkdtemp(prefix="hookflash-stages-"))
    raw, report = out / "samples.txt", out / "report.json"
    own = [
        sys.executable,
        __file__,
        args.workload,
        "--child",
        "--report",
        str(report),
        "--items",
        str(args.items),
        "--seconds",
        str(args.seconds),
    ]
    subprocess.run(
        [spy, "record", "--format", "raw", "--rate", str(RATE_HZ), "--output", str(raw), "--", *own],
        check=True,
        capture_output=True,
    )
    done = json.loads(report.read_text())
    per_stage: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(f.startswith(SERVICE_THREADS) for f in frames) or frames[-1].startswith(IDLE):
            continue
        if any(f.startswith(START) for f in frames):
            per_stage["start-up"] += int(count)
            continue
        per_stage[stage_of(frames, STAGES[args.workload]) or "other"] += int(count)
    items = done["items"]
    start_s = per_stage.pop("start-up", 0) / RATE_HZ
    total = sum(per_stage.values())
    print(
        f"{args.workload}: {items:,} items, {done['rate']:,.0f}/s while profiled, "
        f"{total / RATE_HZ / items * 1e6:.1f} µs of CPU per item (start-up apart: {start_s:.2f} s)"
    )
    result = {"per_item_us": total / RATE_HZ / items * 1e6}
    for stage, _ in [*STAGES[args.workload], ("other", ())]:
        us = per_stage[stage] / RATE_HZ / items * 1e6
        print(f"  {stage:34s} {us:7.2f} µs  {100 * per_stage[stage] / total:5.1f} %")
        result[re.sub(r"\W+", "_", stage).strip("_").lower() + "_us"] = us
    shutil.rmtree(out, ignore_errors=True)
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
