"""MQTT ingest rate: hookflash end to end versus a bare paho subscriber that only counts.

Both drain the same kind of queued backlog from one mosquitto on loopback: N JSON
telemetry messages (~120 bytes, with a `ts`) on 100 device topics, published while the
subscriber was offline and kept for it by its persistent session.

- The baseline, bench/paho_counter.py, runs in a process of its own, over MQTT 3.1.1 and
  over MQTT 5 (both reported; the ratios are against the faster).
- hookflash runs its collector (decoded, validated, gated, tagged, queued, re-checked
  against the gate in the writer thread, handed to a sink, and, at QoS 1, acknowledged
  only after that) with a sink that counts, and again into the embedded SQLite store,
  over the protocol its config says (`[mqtt] protocol`, both measured).

Every rate is timed from the first message to the last: paho's from the first message its
callback counts, hookflash's from the first message handed to its intake to the last
record handed to the sink (so every message's whole path, the last batch's write
included, is inside the window). Connecting and start-up are outside it and reported
apart. Three rounds; the median of each figure is reported.

Usage: python bench/mqtt_ingest.py [--quick] [--messages N] [--rounds N]   (needs mosquitto)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from collector.config import MqttConfig, ServiceConfig, SnmpConfig  # noqa: E402
from collector.core.files import private_umask  # noqa: E402
from collector.core.records import TelemetryRecord  # noqa: E402
from collector.runtime.service import Service  # noqa: E402
from factories import mqtt_device  # noqa: E402
from provisioning.registry import Registry  # noqa: E402
from runner import RunningService, eventually  # noqa: E402
from services import Mosquitto  # noqa: E402

PHONES = 100
FILTER = "hookflash/+/+"
COUNTER = [sys.executable, str(Path(__file__).with_name("paho_counter.py"))]
PROTOCOLS = ("3.1.1", "5")


def publish_backlog(broker: Mosquitto, topics: list[str], count: int, qos: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="backlog-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = []
    for i in range(count):
        body = json.dumps({"ts": round(time.time(), 3), "wifi": {"rssi": -40 - i % 50, "channel": i % 165}})
        infos.append(client.publish(f"{topics[i % len(topics)]}/signal", body, qos=qos))
        if len(infos) >= 5000:  # bounded: paho keeps every unsent message in memory
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def counter(*args: object) -> str:
    command = [*COUNTER, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"paho_counter {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def bare_paho(broker: Mosquitto, topics: list[str], count: int, qos: int, protocol: str) -> dict[str, float]:
    """The baseline in its own process: messages per second, first to last."""
    client_id = f"bare-q{qos}-v{protocol}"
    counter("prepare", broker.host, broker.port, client_id, qos, protocol, FILTER)
    publish_backlog(broker, topics, count, qos)
    out = json.loads(counter("drain", broker.host, broker.port, client_id, qos, protocol, count))
    counter("forget", broker.host, broker.port, client_id)
    rate = (count - 1) / out["first_to_last_s"]
    return {"rate": rate, "lead_s": out["connect_to_last_s"] - out["first_to_last_s"]}


class Timed:
    """Wraps the pipeline's sink: when the last record was handed to it."""

    def __init__(self, inner: Any, count: int) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "timed")
        self.count = count
        self.seen = 0
        self.last = 0.0
        self.first_in = 0.0  # when the first message reached the intake
        self.done = threading.Event()

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        written = self.inner.write(records)
        now = time.perf_counter()
        self.seen += len(records)
        if self.seen >= self.count:
            self.last = now
            self.done.set()
        return int(written)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingSink:
    """Takes the records the writer hands it and counts them."""

    name = "counting"

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        return len(records)

    def erase_account(self, *_args: object) -> dict[str, int]:
        return {}

    def purge_since(self, *_args: object) -> int:
        return 0

    def last_seen(self, _account_id: str) -> dict[str, datetime]:
        return {}

    def close(self) -> None:
        pass


def timing(count: int, counting: bool, into: list[Timed]) -> Callable[[Service], None]:
    def prepare(service: Service) -> None:
        sinks = [CountingSink()] if counting else service.pipeline.sinks
        timed = [Timed(sink, count) for sink in sinks]
        into.extend(timed)
        service.pipeline.sinks = timed  # type: ignore[assignment]
        intake = service.intake
        receive = intake.receive

        def first_receive(item: Any) -> Any:
            """Notes when the first message reached the intake, then steps aside."""
            for t in timed:
                t.first_in = time.perf_counter()
            del intake.receive  # the class's own method again: no cost for the rest
            return receive(item)

        intake.receive = first_receive  # type: ignore[method-assign]

    return prepare


def hookflash(
    broker: Mosquitto, work: Path, topics: list[str], count: int, qos: int, protocol: str, sink: str
) -> dict[str, float]:
    client_id = f"hf-{work.name}-q{qos}-v{protocol}-{sink}"  # one session per round
    cfg = ServiceConfig(
        data_dir=work / client_id,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(
            enabled=True,
            port=broker.port,
            client_id=client_id,
            subscribe="wildcard",
            wildcard_filter=FILTER,
            qos=qos,
            protocol=protocol,
            receive_maximum=1000,
        ),
    )
    Registry(cfg.data_dir / "registry.db").import_devices(
        [mqtt_device(n, f"acct-{n % 10}") for n in range(PHONES)], source="bench"
    )
    with RunningService(cfg):  # first visit: the session and its subscription
        eventually(lambda: broker.subscribed_topics(client_id) == [FILTER], what="subscribed")
    publish_backlog(broker, topics, count, qos)
    timed: list[Timed] = []
    started = time.perf_counter()
    with RunningService(cfg, timing(count, sink == "counting", timed)) as running:
        if not timed[0].done.wait(600):
            raise RuntimeError(f"hookflash stored {timed[0].seen} of {count}")
        quarantined = running.stats.quarantined
    counter("forget", broker.host, broker.port, client_id)
    if quarantined:
        raise RuntimeError(f"{quarantined} benchmark messages were quarantined")
    # From the first message handed to the intake to the last record handed to the sink:
    # every message's whole path is inside the window (timing from the first write instead
    # would leave out what the loop decoded while the writer gathered its first batch).
    window = timed[0].last - timed[0].first_in
    return {"rate": (count - 1) / window, "lead_s": timed[0].first_in - started}


def one_round(broker: Mosquitto, work: Path, topics: list[str], count: int, n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for qos in (0, 1):
        for protocol in PROTOCOLS:
            paho = bare_paho(broker, topics, count, qos, protocol)
            figures[f"paho_q{qos}_v{protocol}"] = paho["rate"]
            ours = hookflash(broker, work / f"r{n}", topics, count, qos, protocol, "counting")
            figures[f"hookflash_q{qos}_v{protocol}"] = ours["rate"]
            figures[f"startup_q{qos}_v{protocol}_s"] = ours["lead_s"]
        stored = hookflash(broker, work / f"r{n}", topics, count, qos, MqttConfig().protocol, "sqlite")
        figures[f"sqlite_q{qos}"] = stored["rate"]
    rates = " ".join(f"{k}={v:,.0f}" for k, v in figures.items() if "startup" not in k)
    print("round", n + 1, rates, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    private_umask()  # as the `hookflash` command does: its files owner-only from the start
    count = args.messages or (30_000 if args.quick else 200_000)
    work = Path(tempfile.mkdtemp(prefix="hookflash-mqtt-bench-"))
    topics = [mqtt_device(n, "x").address for n in range(PHONES)]
    broker = Mosquitto(
        work / "mosquitto", extra=["queue_qos0_messages true", "max_inflight_messages 1000"]
    ).start()
    try:
        rounds = [one_round(broker, work, topics, count, n) for n in range(args.rounds)]
    finally:
        broker.stop()
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    default = MqttConfig().protocol
    result = {}
    for qos in (0, 1):
        paho = max(med[f"paho_q{qos}_v{v}"] for v in PROTOCOLS)
        ours = med[f"hookflash_q{qos}_v{default}"]
        for v in PROTOCOLS:
            print(
                f"QoS {qos} MQTT {v}: bare paho {med[f'paho_q{qos}_v{v}']:,.0f} msg/s, hookflash "
                f"{med[f'hookflash_q{qos}_v{v}']:,.0f} msg/s (start-up {med[f'startup_q{qos}_v{v}_s']:.2f} s)"
            )
        print(f"QoS {qos} into SQLite (MQTT {default}): {med[f'sqlite_q{qos}']:,.0f} msg/s")
        result[f"qos{qos}_ratio_vs_paho"] = ours / paho
        result[f"qos{qos}_sqlite_ratio"] = med[f"sqlite_q{qos}"] / paho
        result[f"paho_qos{qos}_msgs_per_s"] = paho
        result[f"hookflash_qos{qos}_msgs_per_s"] = ours
    result["startup_s"] = med[f"startup_q0_v{default}_s"]
    print(f"median of {args.rounds} rounds, {count:,} messages each, hookflash over MQTT {default}")
    print("RESULT " + " ".join(f"{k}={v:.2f}" if v < 100 else f"{k}={v:.0f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
