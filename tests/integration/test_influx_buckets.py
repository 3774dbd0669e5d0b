"""`hookflash influx ensure-buckets` at the HTTP level, against the InfluxDB 2 org and bucket
endpoints served by a recording server (VictoriaMetrics has no bucket API; there is no
InfluxDB 2 on this machine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from influx_http import InfluxBuckets, Recorder, Request

from collector.cli.main import cli
from collector.retention import load_policy
from services import free_port

TOKEN = "influx-t0ken-never-printed"
ORG_ID = "0a1b2c3d4e5f6a7b"
DAY = 86400
POLICY = load_policy()  # account_lifetime, identifying: while-active; operational 30d; troubleshooting 72h


@pytest.fixture
def influx() -> Iterator[tuple[Recorder, InfluxBuckets]]:
    api = InfluxBuckets(token=TOKEN)
    server = Recorder(api)
    yield server, api
    server.close()


def config_file(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "hookflash.toml"
    path.write_text(
        f'[influx]\nurl = "{url}"\norg = "hookflash"\ntoken_env = "TEST_INFLUX_TOKEN"\n'
        f'buckets = {{ operational = "noc-ops" }}\n{extra}'
    )
    return path


def ensure(config: Path, *options: str) -> Result:
    runner = CliRunner(env={"TEST_INFLUX_TOKEN": TOKEN})
    return runner.invoke(cli, ["influx", "ensure-buckets", "-c", str(config), "--format", "json", *options])


def rows(result: Result) -> dict[str, dict[str, str]]:
    parsed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {row["class"]: row for row in parsed}


def changes(server: Recorder) -> list[Request]:
    return [r for r in server.requests if r.method in ("POST", "PATCH", "DELETE")]


def test_creates_exactly_the_missing_buckets_with_the_class_retention(
    tmp_path: Path, influx: tuple[Recorder, InfluxBuckets]
) -> None:
    server, api = influx
    api.add("hookflash-account_lifetime", 0)
    api.add("noc-ops", 30 * DAY)
    api.add("hookflash-identifying", 0, org="hookflash")
    api.orgs["other"] = "ffffffffffffffff"
    api.add("hookflash-troubleshooting", 72 * 3600, org="other")  # same name, another org
    result = ensure(config_file(tmp_path, server.url))
    assert result.exit_code == 0, result.output
    created = changes(server)
    assert [(r.method, r.path) for r in created] == [("POST", "/api/v2/buckets")]
    body = created[0].json()
    assert body["name"] == "hookflash-troubleshooting"
    assert body["orgID"] == ORG_ID
    assert body["retentionRules"] == [{"type": "expire", "everySeconds": 72 * 3600}]
    assert body["description"].startswith("hookflash retention class troubleshooting")
    assert {c: r["action"] for c, r in rows(result).items()} == {
        "account_lifetime": "ok",
        "identifying": "ok",
        "operational": "ok",
        "troubleshooting": "created",
    }
    assert rows(result)["operational"] == {
        "class": "operational",
        "bucket": "noc-ops",
        "policy": "30d",
        "server": "30d",
        "action": "ok",
    }
    assert TOKEN not in result.output
    assert {r.headers["authorization"] for r in server.requests} == {f"Token {TOKEN}"}


def test_while_active_classes_get_infinite_retention(
    tmp_path: Path, influx: tuple[Recorder, InfluxBuckets]
) -> None:
    server, _api = influx
    result = ensure(config_file(tmp_path, server.url))
    assert result.exit_code == 0, result.output
    bodies = {r.json()["name"]: r.json()["retentionRules"] for r in changes(server)}
    assert bodies == {
        "hookflash-account_lifetime": [{"type": "expire", "everySeconds": 0}],
        "hookflash-identifying": [{"type": "expire", "everySeconds": 0}],
        "noc-ops": [{"type": "expire", "everySeconds": 30 * DAY}],
        "hookflash-troubleshooting": [{"type": "expire", "everySeconds": 3 * DAY}],
    }
    assert ensure(config_file(tmp_path, server.url)).exit_code == 0  # a second run changes nothing
    assert len(changes(server)) == 4


def test_drift_is_reported_not_changed_unless_fix(
    tmp_path: Path, influx: tuple[Recorder, InfluxBuckets]
) -> None:
    server, api = influx
    api.add("hookflash-account_lifetime", 90 * DAY)  # would expire data of active accounts (P3)
    api.add("hookflash-identifying", 0)
    api.add("noc-ops", 7 * DAY)
    api.add("hookflash-troubleshooting", 72 * 3600)
    config = config_file(tmp_path, server.url)
    result = ensure(config)
    assert result.exit_code == 1
    assert not changes(server)
    drift = {c: (r["policy"], r["server"]) for c, r in rows(result).items() if r["action"] == "drift"}
    assert drift == {"account_lifetime": ("infinite", "90d"), "operational": ("30d", "7d")}
    differ = "2 bucket(s) differ from the retention policy: hookflash-account_lifetime, noc-ops"
    assert differ in result.stderr
    assert "--fix" in result.stderr

    fixed = ensure(config, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert [(r.method, r.json()["retentionRules"]) for r in changes(server)] == [
        ("PATCH", [{"type": "expire", "everySeconds": 0}]),
        ("PATCH", [{"type": "expire", "everySeconds": 30 * DAY}]),
    ]
    assert (api.retention("hookflash-account_lifetime"), api.retention("noc-ops")) == (0, 30 * DAY)
    assert {c: r["action"] for c, r in rows(fixed).items()}["operational"] == "fixed"
    assert ensure(config).exit_code == 0


def test_dry_run_sends_nothing_that_changes_the_server(
    tmp_path: Path, influx: tuple[Recorder, InfluxBuckets]
) -> None:
    server, api = influx
    api.add("noc-ops", DAY)
    result = ensure(config_file(tmp_path, server.url), "--dry-run", "--fix")
    assert result.exit_code == 1
    assert {r.method for r in server.requests} == {"GET"}
    assert {c: r["action"] for c, r in rows(result).items()} == {
        "account_lifetime": "missing",
        "identifying": "missing",
        "operational": "drift",
        "troubleshooting": "missing",
    }
    assert "3 bucket(s) missing" in result.stderr


def test_table_output(tmp_path: Path, influx: tuple[Recorder, InfluxBuckets]) -> None:
    server, _api = influx
    runner = CliRunner(env={"TEST_INFLUX_TOKEN": TOKEN})
    result = runner.invoke(cli, ["influx", "ensure-buckets", "-c", str(config_file(tmp_path, server.url))])
    assert result.exit_code == 0, result.output
    assert "noc-ops" in result.stdout and "created" in result.stdout and "infinite" in result.stdout
    assert "4 row(s)" in result.stdout


def assert_error(result: Result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output and TOKEN not in result.output
    for text in expected:
        assert text in result.stderr, result.stderr


def test_errors_exit_2_with_a_clear_message(tmp_path: Path, influx: tuple[Recorder, InfluxBuckets]) -> None:
    server, api = influx
    api.token = "another-token"
    refused = ensure(config_file(tmp_path, server.url))
    assert_error(refused, "HTTP 401", "check the token", "unauthorized access")
    api.token = TOKEN

    nowhere = f"http://127.0.0.1:{free_port('tcp')}"
    assert_error(ensure(config_file(tmp_path, nowhere)), f"cannot reach {nowhere}")

    wrong_org = config_file(tmp_path, server.url).read_text().replace('org = "hookflash"', 'org = "nope"')
    (tmp_path / "hookflash.toml").write_text(wrong_org)
    assert_error(ensure(tmp_path / "hookflash.toml"), "org 'nope'", "not found")

    typo = tmp_path / "typo.toml"
    typo.write_text(
        f'[influx]\nurl = "{server.url}"\ntoken_env = "TEST_INFLUX_TOKEN"\nbuckets = {{ operatonal = "x" }}\n'
    )
    assert_error(ensure(typo), "unknown retention class(es) 'operatonal'", "operational")

    unset = CliRunner(env={"TEST_INFLUX_TOKEN": ""}).invoke(
        cli, ["influx", "ensure-buckets", "-c", str(config_file(tmp_path, server.url))]
    )
    assert_error(unset, "influx.token_env names environment variable TEST_INFLUX_TOKEN, which is not set")
    assert not changes(server)
