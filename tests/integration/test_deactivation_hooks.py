"""Deactivation hooks end to end: HTTP API (auth, idempotency, receipts), signed webhooks
with retry and a persistent outbox, in-process entry-point hooks, and export (P6). Each
test on both backends: the registry in registry.db, and in PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collector.config import ApiConfig, ServiceConfig, SnmpConfig, SnmpCredential, WebhookConfig
from collector.runtime.paths import registry_of
from collector.sinks.sqlite import TelemetryQueries
from collector.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from factories import HT812_AGENT, mqtt_device, snmp_device
from postgres import Postgres
from provisioning.registry import Registry
from receiver import WebhookReceiver
from runner import RunningService, eventually, hookflash
from services import SnmpdFactory, free_port

TOKEN = "api-token-for-tests-0123456789"
SECRET = "webhook-signing-secret"
AGENT = HT812_AGENT


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)


def make_config(
    tmp_path: Path, database_url: str | None, hook_url: str | None = None, api: bool = True
) -> ServiceConfig:
    """A service on the test's backend (conftest `database_url`: None is registry.db)."""
    return ServiceConfig(
        data_dir=tmp_path / "data",
        database_url=database_url,
        snmp=SnmpConfig(interval_s=0.3, timeout_s=0.5, retries=0),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
        api=ApiConfig(enabled=api, port=free_port("tcp"), token_env="TEST_API_TOKEN"),
        webhooks=[WebhookConfig(name="crm", url=hook_url, secret_env="TEST_HOOK_SECRET")] if hook_url else [],
    )


_OPENED: list[Registry] = []


@pytest.fixture(autouse=True)
def close_registries() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def registry(cfg: ServiceConfig) -> Registry:
    """The service's registry, opened as another process would (closed after the test)."""
    opened = registry_of(cfg.data_dir, cfg.database_url)
    _OPENED.append(opened)
    return opened


def cli(cfg: ServiceConfig, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI on the service's backend, as an operator on its host runs it."""
    backend = ("--database-url", cfg.database_url) if cfg.database_url else ()
    return hookflash(*backend, *args, "--data-dir", cfg.data_dir)


def provision(cfg: ServiceConfig, port: int) -> None:
    registry(cfg).import_devices(
        [
            snmp_device(1, "acct-a", port),
            snmp_device(2, "acct-b", port),
            mqtt_device(3, "acct-a").model_copy(update={"credentials": "ref-to-secret-store"}),
        ],
        source="test",
    )


def api(cfg: ServiceConfig, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{cfg.api.port}", headers=headers, timeout=10)


def wait_receipt(client: httpx.Client, receipt_id: str) -> dict[str, object]:
    result: dict[str, object] = {}

    def done() -> bool:
        nonlocal result
        result = client.get(f"/v1/receipts/{receipt_id}").json()
        return result["status"] != "pending"

    eventually(done, what="receipt completed")
    return result


def test_api_authenticates_is_idempotent_and_returns_receipts(
    tmp_path: Path, snmpd_factory: SnmpdFactory, database_url: str | None
) -> None:
    agent = snmpd_factory(AGENT)
    cfg = make_config(tmp_path, database_url)
    provision(cfg, agent.port)
    body = {
        "request_id": "billing-req-000001",
        "account_id": "acct-a",
        "action": "revoke",
        "reason": "consent withdrawn",
    }
    with RunningService(cfg):
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query(account_id="acct-a")) >= 5, what="acct-a data")
        assert api(cfg, token=None).post("/v1/deactivations", json=body).status_code == 401
        assert api(cfg, token="wrong").post("/v1/deactivations", json=body).status_code == 401
        with api(cfg) as client:
            first = client.post("/v1/deactivations", json=body)
            assert first.status_code == 202
            receipt_id = first.json()["receipt_id"]
            assert first.json()["receipt_url"] == f"/v1/receipts/{receipt_id}"
            receipt = wait_receipt(client, receipt_id)
            again = client.post("/v1/deactivations", json=body)
            assert again.status_code == 200 and again.json()["receipt_id"] == receipt_id
            clash = client.post("/v1/deactivations", json={**body, "account_id": "acct-b"})
            assert clash.status_code == 409
            missing = client.post(
                "/v1/deactivations", json={**body, "request_id": "billing-req-000002", "account_id": "nobody"}
            )
            assert missing.status_code == 404 and "no such account" in missing.text
            bad = client.post("/v1/deactivations", json={**body, "action": "explode"})
            assert bad.status_code == 422
            assert client.get("/v1/receipts/rcpt_nope").status_code == 404
    assert receipt["status"] == "done"
    result = receipt["result"]
    assert isinstance(result, dict)
    assert result["status_before"] == "active" and result["status_after"] == "revoked"
    assert len(result["acknowledged_by"]) == 1 and result["unacknowledged"] == []
    assert result["stop_latency_ms"] < 1000
    assert {d["device_id"] for d in result["devices"]} == {"000b82000001", "805ec0000003"}
    erased = result["erased"]["sqlite"]
    assert erased["operational"] > 0 and erased["account_lifetime"] > 0
    audit = registry(cfg).audit_entries("acct-a")
    assert [a["action"] for a in audit].count("receipt.completed") == 1  # the retry did nothing twice
    assert TelemetryQueries.open(cfg.data_dir / "telemetry.db").query(account_id="acct-a") == []


def test_webhook_is_signed_retried_and_carries_the_receipt(
    tmp_path: Path, snmpd_factory: SnmpdFactory, database_url: str | None, request: pytest.FixtureRequest
) -> None:
    agent = snmpd_factory(AGENT)
    with WebhookReceiver(fail_first=2) as receiver:
        cfg = make_config(tmp_path, database_url, receiver.url, api=False)
        provision(cfg, agent.port)
        with RunningService(cfg) as running:
            store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
            eventually(lambda: len(store.query(account_id="acct-a")) >= 3, what="acct-a data")
            assert running.service is not None
            running.service.dispatcher._base = 0.05  # type: ignore[union-attr]  # fast retries in test
            result = cli(cfg, "accounts", "suspend", "acct-a", "--reason", "non-payment")
            assert result.returncode == 0, result.stderr
            assert "collection stopped, confirmed by 1 running collector(s)" in result.stdout
            eventually(lambda: len(receiver.deliveries) == 1, timeout=15, what="webhook delivered")
            # Marked delivered once the receiver's answer is in (a stop before that would
            # deliver it again at the next start: at least once).
            eventually(lambda: "hook.delivered" in _audit_actions(cfg, "acct-a"), what="delivery recorded")
        delivery = receiver.deliveries[0]
        assert receiver.attempts == 3  # two 503s, then success
        headers = {k.lower(): v for k, v in delivery.headers.items()}
        assert verify(
            SECRET.encode(),
            headers[TIMESTAMP_HEADER.lower()],
            delivery.body,
            headers[SIGNATURE_HEADER.lower()],
        )
        assert not verify(
            b"other-secret",
            headers[TIMESTAMP_HEADER.lower()],
            delivery.body,
            headers[SIGNATURE_HEADER.lower()],
        )
        assert not verify(
            SECRET.encode(),
            headers[TIMESTAMP_HEADER.lower()],
            delivery.body + b" ",
            headers[SIGNATURE_HEADER.lower()],
        )
        payload = delivery.json()
        assert payload["event"] == "collection.stopped" and payload["account_id"] == "acct-a"
        assert payload["reason"] == "non-payment" and payload["action"] == "suspend"
        seen = {d["device_id"]: d["last_seen"] for d in payload["devices"]}
        assert seen["000b82000001"] is not None and seen["805ec0000003"] is None
        assert payload["when"] and payload["erased"] == {}
        if database_url is None:
            assert SECRET not in (cfg.data_dir / "registry.db").read_bytes().decode("latin-1")
        else:
            server: Postgres = request.getfixturevalue("postgres_server")
            assert all(SECRET not in rows for rows in server.every_row_as_text(database_url).values())
        audit = [a["action"] for a in registry(cfg).audit_entries("acct-a")]
        assert "hook.delivered" in audit


def test_outbox_survives_a_restart_while_the_receiver_is_down(
    tmp_path: Path, database_url: str | None
) -> None:
    port = free_port("tcp")
    url = f"http://127.0.0.1:{port}/hooks/hookflash"
    cfg = make_config(tmp_path, database_url, url, api=False).model_copy(
        update={"snmp": SnmpConfig(enabled=False)}
    )
    provision(cfg, 1)
    with RunningService(cfg):
        result = cli(cfg, "accounts", "revoke", "acct-a", "acct-b")
        assert result.returncode == 0, result.stderr
        time.sleep(1.5)  # the dispatcher tries and fails: nobody listens
    pending = [e for e in _outbox(cfg) if e["status"] == "pending" and e["webhook"] == "crm"]
    assert len(pending) == 2 and all(e["attempts"] >= 1 for e in pending)
    with WebhookReceiver(port=port) as receiver, RunningService(cfg):
        eventually(lambda: len(receiver.deliveries) == 2, timeout=15, what="both delivered after restart")
        eventually(
            lambda: {e["status"] for e in _outbox(cfg) if e["webhook"] == "crm"} == {"delivered"},
            what="both recorded as delivered",
        )
    assert sorted(d.json()["account_id"] for d in receiver.deliveries) == ["acct-a", "acct-b"]
    assert {e["status"] for e in _outbox(cfg) if e["webhook"] == "crm"} == {"delivered"}


def _audit_actions(cfg: ServiceConfig, account_id: str) -> list[str]:
    return [str(a["action"]) for a in registry(cfg).audit_entries(account_id)]


def _outbox(cfg: ServiceConfig) -> list[dict[str, object]]:
    from provisioning.outbox import Outbox

    return Outbox(registry(cfg).db).entries()


def test_entry_point_hook_is_called_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    plugin = tmp_path / "plugin"
    (plugin / "crm_hook-1.0.dist-info").mkdir(parents=True)
    (plugin / "crm_hook-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crm-hook\nVersion: 1.0\n"
    )
    (plugin / "crm_hook-1.0.dist-info" / "entry_points.txt").write_text(
        "[hookflash.deactivation]\ncrm = crm_hook:on_stop\nbroken = crm_hook:explode\n"
    )
    (plugin / "crm_hook.py").write_text(
        f"import json, pathlib\nOUT = pathlib.Path({str(tmp_path / 'seen.json')!r})\n"
        "def on_stop(receipt):\n    OUT.write_text(json.dumps(receipt))\n"
        "def explode(receipt):\n    raise RuntimeError('crm is down')\n"
    )
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.delitem(sys.modules, "crm_hook", raising=False)  # the other backend's run imported its own
    cfg = make_config(tmp_path, database_url, api=False).model_copy(
        update={"snmp": SnmpConfig(enabled=False)}
    )
    provision(cfg, 1)
    from collector.cli.backend import BACKEND
    from collector.cli.lifecycle_cmds import deactivator_for, run_requests
    from provisioning.receipts import Action

    monkeypatch.setattr(BACKEND, "url", database_url)

    run_requests(deactivator_for(cfg.data_dir, None), Action.REVOKE, ["acct-b"], "gdpr", None, "json")
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert (
        seen["account_id"] == "acct-b" and seen["reason"] == "gdpr" and seen["event"] == "collection.stopped"
    )
    audit = registry(cfg).audit_entries("acct-b")
    called = next(a for a in audit if a["action"] == "hook.called")["detail"]["hooks"]
    assert called == {"crm": "ok", "broken": "RuntimeError: crm is down"}
    assert "crm_hook" in sys.modules


def test_export_holds_everything_about_the_account_and_no_credentials(
    tmp_path: Path, snmpd_factory: SnmpdFactory, database_url: str | None
) -> None:
    agent = snmpd_factory(AGENT)
    cfg = make_config(tmp_path, database_url, api=False)
    provision(cfg, agent.port)
    with RunningService(cfg):
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query(account_id="acct-a")) >= 6, what="acct-a data")
        assert cli(cfg, "accounts", "suspend", "acct-a").returncode == 0
    out = tmp_path / "export.json"
    result = cli(cfg, "privacy", "export", "acct-a", "-o", out)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    held = TelemetryQueries.open(cfg.data_dir / "telemetry.db").query(account_id="acct-a")
    assert len(doc["telemetry"]) == len(held) > 0
    assert {t["device_id"] for t in doc["telemetry"]} == {"000b82000001"}
    assert {d["id"] for d in doc["devices"]} == {"000b82000001", "805ec0000003"}
    assert "ref-to-secret-store" not in out.read_text() and all(
        "credentials" not in d for d in doc["devices"]
    )
    assert doc["account"]["status"] == "inactive"
    assert doc["quarantine"] == []  # held per account, exported too (none here)
    assert [r["action"] for r in doc["receipts"]] == ["suspend"]
    assert {"account.status", "receipt.completed"} <= {a["action"] for a in doc["audit"]}
    assert all(t["account_id"] == "acct-a" for t in doc["telemetry"])
    audit = registry(cfg).audit_entries("acct-a")
    assert audit[-1]["action"] == "privacy.exported" and audit[-1]["detail"]["telemetry"] == len(held)
    missing = cli(cfg, "privacy", "export", "nobody")
    assert missing.returncode == 2 and "no such account: 'nobody'" in missing.stderr
