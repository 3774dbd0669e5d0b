"""P5, erasure wherever it is claimed: with VictoriaMetrics as the remote store, a
revocation leaves none of the account's samples there (counted through its export API),
and its receipt is `done` only once VictoriaMetrics confirmed. With the service running,
the service erases there (between its spool's sends); with it stopped, the CLI erases there
when it has the config, and otherwise the receipt stays pending, naming the store, until the
service starts and finishes it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from collector.config import InfluxConfig, ServiceConfig, SnmpConfig, SnmpCredential
from factories import HT812_AGENT, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually, hookflash
from services import SnmpdFactory, VictoriaMetrics


def samples(victoria: VictoriaMetrics, account: str) -> int:
    return sum(len(s["values"]) for s in victoria.export(f'{{account_id="{account}"}}'))


@pytest.fixture
def setup(
    tmp_path: Path, victoria: VictoriaMetrics, snmpd_factory: SnmpdFactory, monkeypatch: pytest.MonkeyPatch
) -> tuple[ServiceConfig, Path]:
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "vm-token-not-to-leak")
    agents = [snmpd_factory(HT812_AGENT) for _ in range(2)]
    influx = InfluxConfig(
        enabled=True, url=victoria.url, token_env="TEST_INFLUX_TOKEN", server="victoriametrics"
    )
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(interval_s=0.3, timeout_s=0.5, retries=0),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
        influx=influx,
    )
    config_file = tmp_path / "hookflash.toml"
    config_file.write_text(
        f'[influx]\nenabled = true\nurl = "{victoria.url}"\ntoken_env = "TEST_INFLUX_TOKEN"\n'
        'server = "victoriametrics"\n'
    )
    devices = [snmp_device(n, f"acct-{n}", a.port) for n, a in enumerate(agents, start=1)]
    Registry(cfg.data_dir / "registry.db").import_devices(devices, source="test")
    return cfg, config_file


def revoke(cfg: ServiceConfig, config_file: Path | None) -> tuple[int, dict[str, Any]]:
    args = ["accounts", "revoke", "acct-1", "--format", "json", "--data-dir", cfg.data_dir]
    done = hookflash(*args, *(["-c", config_file] if config_file else []))
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout.splitlines()[-1])


def receipt_done(cfg: ServiceConfig, receipt_id: str) -> bool:
    shown = hookflash("receipts", "show", receipt_id, "--data-dir", cfg.data_dir)
    return bool(json.loads(shown.stdout)["status"] == "done")


def collected(victoria: VictoriaMetrics) -> None:
    eventually(
        lambda: samples(victoria, "acct-1") > 20 and samples(victoria, "acct-2") > 20,
        timeout=20,
        what="both accounts' samples in VictoriaMetrics",
    )


@pytest.mark.parametrize("with_config", [True, False], ids=["cli-with-config", "cli-without"])
def test_revoked_while_the_service_runs(
    setup: tuple[ServiceConfig, Path], victoria: VictoriaMetrics, with_config: bool
) -> None:
    cfg, config_file = setup
    with RunningService(cfg):
        collected(victoria)
        code, receipt = revoke(cfg, config_file if with_config else None)
        assert code == 0 and receipt["status"] == "done", receipt
        assert receipt["result"]["erased"]["influx"] == {c: -1 for c in receipt["result"]["end_actions"]}
        time.sleep(1.0)  # anything still in flight would have landed by now
        assert samples(victoria, "acct-1") == 0
        assert samples(victoria, "acct-2") > 20  # the other account untouched
        # and in the running service's own files, WAL included: no trace of the device
        raw = b"".join(p.read_bytes() for p in cfg.data_dir.glob("telemetry.db*"))
        assert b"000b82000001" not in raw and b"000b82000002" in raw


def test_revoked_while_the_service_is_stopped(
    setup: tuple[ServiceConfig, Path], victoria: VictoriaMetrics
) -> None:
    cfg, _ = setup
    with RunningService(cfg):
        collected(victoria)
    code, receipt = revoke(cfg, None)  # no config: the CLI cannot erase in VictoriaMetrics
    assert code == 3 and receipt["status"] == "pending" and receipt["result"]["outstanding"] == ["influx"]
    assert receipt["result"]["erased"]["influx"].startswith("outstanding:")
    assert samples(victoria, "acct-1") > 20
    with RunningService(cfg):
        eventually(
            lambda: receipt_done(cfg, receipt["id"]),
            timeout=20,
            what="the service finishing the erasure at start",
        )
        time.sleep(1.0)
        assert samples(victoria, "acct-1") == 0 and samples(victoria, "acct-2") > 20


def test_revoked_and_reactivated_while_stopped_is_still_erased(
    setup: tuple[ServiceConfig, Path], victoria: VictoriaMetrics
) -> None:
    """The revocation's erasure is owed even when the account is active again by the time
    the service starts: nothing from before the reactivation is left there."""
    cfg, _ = setup
    with RunningService(cfg):
        collected(victoria)
    code, receipt = revoke(cfg, None)
    assert code == 3 and receipt["status"] == "pending"
    time.sleep(0.01)
    again = hookflash("accounts", "reactivate", "acct-1", "--format", "json", "--data-dir", cfg.data_dir)
    assert again.returncode == 0, again.stderr
    reactivated_ms = time.time() * 1000
    with RunningService(cfg):
        eventually(
            lambda: receipt_done(cfg, receipt["id"]),
            timeout=20,
            what="the revocation's erasure finished at start",
        )
        time.sleep(1.0)
        stamps = [t for s in victoria.export('{account_id="acct-1"}') for t in s["timestamps"]]
        assert all(t >= reactivated_ms - 50 for t in stamps), min(stamps) - reactivated_ms
        assert samples(victoria, "acct-2") > 20
