"""The read API of a running hookflash, over HTTP: fleet summary and lists (paginated),
device detail and history, firmware distribution, rollout status (every number, on the
scripted fleet of tests/rollout_fleet.py), tokens, /metrics, OpenAPI, and that a revoked
account's devices disappear from every view."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from certs import make_tls_files
from collector.config import ApiConfig, ApiToken, ConfigError, MqttConfig, ServiceConfig, SnmpConfig
from rollout_fleet import ID, MODEL, NEWER, OLD, TARGET, Times, check_report, write_fleet
from runner import RunningService, eventually
from services import free_port

TOKEN = "read-api-token-0123456789abcdef"
T = Times(base=datetime(2026, 11, 1, tzinfo=UTC))


def config(data_dir: Path, **api: bool) -> ServiceConfig:
    return ServiceConfig(
        data_dir=data_dir,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
        api=ApiConfig(enabled=True, port=free_port("tcp"), token_env="TEST_READ_TOKEN", **api),
    )


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningService]:
    monkeypatch.setenv("TEST_READ_TOKEN", TOKEN)
    write_fleet(tmp_path, T)
    with RunningService(config(tmp_path)) as running:
        yield running


def client(running: RunningService, token: str | None = TOKEN) -> httpx.Client:
    assert running.service is not None and running.service.api_port is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{running.service.api_port}", headers=headers, timeout=30)


def test_reads_need_the_token_and_never_echo_it(service: RunningService) -> None:
    for path in (
        "/v1/fleet/summary",
        f"/v1/devices/{ID['U1']}",
        "/v1/alerts",
        f"/v1/rollouts/status?model={MODEL}&target={TARGET}",
    ):
        for token in (None, "wrong-token"):
            answer = client(service, token).get(path)
            assert answer.status_code == 401, path
            assert TOKEN not in answer.text and "wrong-token" not in answer.text
    assert client(service).get("/v1/fleet/summary").status_code == 200
    assert client(service, None).get("/metrics").status_code == 401  # behind the read scope too
    assert client(service).get("/metrics").status_code == 200
    for open_path in ("/", "/healthz"):  # the page (its data needs the token) and the probe
        assert client(service, None).get(open_path).status_code == 200
    # The read check is each route's own, not a path built from the Host header.
    sneaky = client(service, None).get("/v1/fleet/summary", headers={"Host": "a/x"})
    assert sneaky.status_code in (400, 401) and "devices" not in sneaky.text


def test_summary_lists_and_firmware(service: RunningService) -> None:
    api = client(service)
    summary = api.get("/v1/fleet/summary").json()
    # 13 HT812s and X1 (HT802); I1's account is inactive. Everything is days old: offline.
    assert {
        k: summary[k]
        for k in (
            "devices",
            "online",
            "offline",
            "never_seen",
            "registered",
            "unregistered",
            "poor_quality",
            "models",
        )
    } == {
        "devices": 14,
        "online": 0,
        "offline": 13,
        "never_seen": 1,
        "registered": 7,
        "unregistered": 5,
        "poor_quality": 0,
        "models": 2,
    }
    assert summary["accounts"] == {"active": 4, "inactive": 1, "revoked": 0}

    first = api.get("/v1/fleet/offline", params={"limit": 2}).json()
    assert first["total"] == 14 and first["limit"] == 2 and first["offset"] == 0
    assert [d["device_id"] for d in first["items"]] == [ID["F2"], ID["RG1"]]  # most recently lost first
    assert first["items"][0]["last_seen"].startswith(T.r(25).strftime("%Y-%m-%dT%H:%M:%S"))
    last = api.get("/v1/fleet/offline", params={"limit": 2, "offset": 13}).json()
    assert [(d["device_id"], d["reason"], d["last_seen"]) for d in last["items"]] == [
        (ID["S3"], "never seen", None)
    ]
    past = api.get("/v1/fleet/offline", params={"limit": 2, "offset": 40}).json()
    assert past["total"] == 14 and past["items"] == []
    assert api.get("/v1/fleet/offline", params={"limit": 10_000}).status_code == 422

    unregistered = api.get("/v1/fleet/unregistered").json()
    assert {d["device_id"] for d in unregistered["items"]} == {ID[n] for n in ("U1", "U2", "U3", "U4", "RB1")}
    assert unregistered["items"][0]["lines"] == {"line1_state": "failed", "line2_state": "unregistered"}

    poor = api.get("/v1/fleet/poor-quality", params={"below": 3.9, "limit": 3}).json()
    assert poor["total"] == 5  # the newest MOS of U1..U4 and RB1 is 3.8
    assert [
        (d["device_id"], d["mos"], d["jitter_ms"], d["loss_pct"], d["firmware"]) for d in poor["items"]
    ] == [(ID[n], 3.8, 40.0, 2.5, TARGET) for n in ("U1", "U2", "U3")]

    firmware = api.get("/v1/fleet/firmware").json()
    assert firmware == [
        {"model": "HT802", "devices": 1, "versions": [{"version": TARGET, "devices": 1}]},
        {
            "model": "HT812",
            "devices": 13,
            "versions": [
                {"version": NEWER, "devices": 1},
                {"version": TARGET, "devices": 5},
                {"version": OLD, "devices": 6},
                {"version": "unknown", "devices": 1},
            ],
        },
    ]


def test_device_detail_and_history(service: RunningService) -> None:
    api = client(service)
    detail = api.get(f"/v1/devices/{ID['RG1'].upper()}").json()
    assert detail["model"] == MODEL and detail["online"] is False
    latest = {r["kind"]: r for r in detail["latest"]}
    assert latest["firmware"]["fields"] == {"version": OLD}
    assert latest["change.firmware_changed"]["fields"]["direction"] == "downgrade"
    assert latest["call_quality"]["fields"]["mos"] == 4.4
    assert api.get(f"/v1/devices/{ID['I1']}").status_code == 404  # inactive account
    bad = api.get("/v1/devices/not-a-mac")
    assert bad.status_code == 422 and "not a MAC address" in bad.text

    page = api.get(f"/v1/devices/{ID['U1']}/history", params={"kind": "call_quality", "limit": 3}).json()
    assert [r["fields"]["mos"] for r in page["items"]] == [3.8, 3.6, 4.4]  # newest first
    assert page["items"][0]["firmware"] == TARGET and page["items"][2]["firmware"] == OLD
    rest = api.get(
        f"/v1/devices/{ID['U1']}/history", params={"kind": "call_quality", "limit": 3, "before": page["next"]}
    ).json()
    assert [r["fields"]["mos"] for r in rest["items"]] == [4.2] and rest["next"] is None
    assert api.get(f"/v1/devices/{ID['U1']}/history", params={"before": "garbage"}).status_code == 422


def test_rollout_status_and_devices(service: RunningService) -> None:
    api = client(service)
    report = api.get("/v1/rollouts/status", params={"model": MODEL, "target": TARGET})
    assert report.status_code == 200, report.text
    check_report(report.json(), T)
    failed = api.get(
        "/v1/rollouts/devices", params={"model": MODEL, "target": TARGET, "state": "failed", "limit": 1}
    ).json()
    assert failed["total"] == 2 and [d["device_id"] for d in failed["items"]] == [ID["F1"]]
    unknown = api.get("/v1/rollouts/status", params={"model": "HT999", "target": TARGET})
    assert unknown.status_code == 404 and "no device of model 'HT999'" in unknown.json()["detail"]
    since = api.get(
        "/v1/rollouts/status", params={"model": MODEL, "target": TARGET, "since": T.r(6).isoformat()}
    ).json()
    assert since["counts"]["straggler"] == 5


def test_openapi_describes_the_read_endpoints(service: RunningService) -> None:
    assert client(service, None).get("/openapi.json").status_code == 401
    assert client(service, None).get("/docs").status_code == 401
    assert "swagger" in client(service).get("/docs").text.lower()
    paths = client(service).get("/openapi.json").json()["paths"]
    for path in (
        "/v1/fleet/summary",
        "/v1/fleet/offline",
        "/v1/fleet/unregistered",
        "/v1/fleet/poor-quality",
        "/v1/fleet/firmware",
        "/v1/devices/{device_id}",
        "/v1/devices/{device_id}/history",
        "/v1/rollouts/status",
        "/v1/rollouts/devices",
        "/v1/alerts",
        "/v1/deactivations",
    ):
        assert path in paths, path


def test_a_revoked_accounts_devices_leave_every_view(service: RunningService) -> None:
    api = client(service)
    account = "acct-0"  # U1 (0x100) and others whose id % 4 == 0
    mine = {n for n, d in ID.items() if int(d, 16) % 4 == 0 and n not in ("I1",)}
    assert "U1" in mine
    accepted = api.post(
        "/v1/deactivations",
        json={"request_id": "noc-test-revoke-1", "account_id": account, "action": "revoke", "reason": "test"},
    )
    assert accepted.status_code == 202
    eventually(
        lambda: api.get(f"/v1/receipts/{accepted.json()['receipt_id']}").json()["status"] == "done",
        what="the revocation to complete",
    )
    assert api.get(f"/v1/devices/{ID['U1']}").status_code == 404
    summary = api.get("/v1/fleet/summary").json()
    assert summary["devices"] == 14 - len(mine) and summary["accounts"]["revoked"] == 1
    seen = {d["device_id"] for d in api.get("/v1/fleet/offline", params={"limit": 500}).json()["items"]}
    assert not seen & {ID[n] for n in mine}
    assert service.service is not None
    dump = service.service.store.queries.text_dump()
    assert not any(ID[n] in dump for n in mine), "erased: not even in the views' index"


def test_metrics_can_require_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_READ_TOKEN", TOKEN)
    write_fleet(tmp_path, T)
    with RunningService(config(tmp_path, auth_metrics=True, auth_reads=False)) as running:
        assert client(running, None).get("/metrics").status_code == 401
        assert client(running).get("/metrics").status_code == 200
        assert client(running, None).get("/v1/fleet/summary").status_code == 200  # reads open
        assert client(running, None).get("/v1/receipts/rcpt_x").status_code == 401  # never open


SCOPED = {"noc": ("read", "noc-read-token-0123456789abcdef"),
          "billing": ("deactivate", "billing-token-0123456789abcdef"),
          "privacy": ("admin", "privacy-admin-token-0123456789ab")}  # fmt: skip


def test_each_scope_is_refused_where_it_does_not_belong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read: the views, /metrics, /docs; deactivate: stop and revoke, and receipts, nothing
    else; admin: everything, reactivation included. Deactivations are rate-limited per token."""
    for name, (_, value) in SCOPED.items():
        monkeypatch.setenv(f"TOKEN_{name.upper()}", value)
    write_fleet(tmp_path, T)
    tokens = [
        ApiToken(name=n, scopes=[scope], token_env=f"TOKEN_{n.upper()}") for n, (scope, _) in SCOPED.items()
    ]
    api = ApiConfig(enabled=True, port=free_port("tcp"), tokens=tokens, rate_burst=3, rate_per_s=0.01)
    cfg = config(tmp_path).model_copy(update={"api": api})
    with RunningService(cfg) as running:
        noc, billing, privacy = (client(running, value) for _, value in SCOPED.values())

        def stop(api_client: httpx.Client, n: int, action: str = "suspend") -> httpx.Response:
            body = {"request_id": f"req-scope-{n:04d}", "account_id": "acct-1", "action": action}
            return api_client.post("/v1/deactivations", json=body)

        assert noc.get("/v1/fleet/summary").status_code == 200 and noc.get("/metrics").status_code == 200
        refused = stop(noc, 1)
        assert refused.status_code == 403 and "'noc' has no 'deactivate' scope" in refused.text
        assert billing.get("/v1/fleet/summary").status_code == 403
        assert billing.get("/metrics").status_code == 403 and billing.get("/docs").status_code == 403
        accepted = stop(billing, 2)
        assert accepted.status_code == 202
        assert billing.get(accepted.json()["receipt_url"]).status_code == 200
        assert noc.get(accepted.json()["receipt_url"]).status_code == 403
        again = stop(billing, 3, "reactivate")
        assert again.status_code == 403 and "needs the 'admin' scope" in again.text
        stop(billing, 4)
        limited = stop(billing, 5)  # the fourth deactivation call of a burst of 3
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert stop(privacy, 6, "reactivate").status_code == 202  # another token, its own budget
        assert privacy.get("/v1/fleet/summary").status_code == 200
        for value in (v for _, v in SCOPED.values()):
            assert value not in refused.text + again.text + limited.text


def test_a_short_token_stops_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_READ_TOKEN", "short-token")
    with pytest.raises(
        ConfigError, match=r"api.token_env: the token 'default' \(TEST_READ_TOKEN\) is 11 characters"
    ):
        config(tmp_path).api.resolved_tokens()


def test_the_api_speaks_https_with_the_configured_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_READ_TOKEN", TOKEN)
    tls = make_tls_files(tmp_path / "tls")
    write_fleet(tmp_path, T)
    cfg = config(tmp_path)
    cfg = cfg.model_copy(
        update={"api": cfg.api.model_copy(update={"tls_cert": tls.server_cert, "tls_key": tls.server_key})}
    )
    with RunningService(cfg) as running:
        assert running.service is not None
        base = f"https://127.0.0.1:{running.service.api_port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(
            base_url=base,
            verify=ssl.create_default_context(cafile=str(tls.ca_cert)),
            headers=headers,
            timeout=10,
        ) as api:
            assert api.get("/v1/fleet/summary").status_code == 200
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not answered
            httpx.get(f"http://127.0.0.1:{running.service.api_port}/healthz", timeout=5)
