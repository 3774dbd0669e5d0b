"""The CLI fails with one clear `error: ...` line and exit status 2, never a traceback, and
prints what users typed exactly as they typed it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from collector.cli.demo import INACTIVE_ACCOUNT, REVOKED_ACCOUNT, status_summary
from collector.cli.main import cli
from collector.config import ConfigError, MqttConfig, load_config
from collector.core.records import Kind
from runner import start_demo

HEADER = "device_id,account_id,vendor,model,profile,transport,address,credentials\n"
NO_DATA = 'registry.db not found); run "hookflash devices import FILE" or "hookflash demo" first'


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={"HOOKFLASH_DATA_DIR": "", **(env or {})}).invoke(cli, [str(a) for a in args])


def assert_clean_error(result: Result, *expected: str) -> None:
    """Exit status 2 and one `error:` line holding every expected text; no traceback."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.stderr, result.stderr


def imported(tmp_path: Path, rows: str) -> Path:
    devices = tmp_path / "devices.csv"
    devices.write_text(HEADER + rows)
    data_dir = tmp_path / "data"
    result = invoke("devices", "import", devices, "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    return data_dir


# -- item 6: read-only commands never create an empty store for a mistyped --data-dir ------


@pytest.mark.parametrize(
    "command",
    [
        ["query"],
        ["query", "--format", "json"],
        ["quarantine"],
        ["audit"],
        ["accounts", "list"],
        ["devices", "list"],
        ["devices", "debug", "000b82000001"],
        ["receipts", "show", "r-1"],
        ["receipts", "list", "--account", "acct-1"],
        ["privacy", "export", "acct-1"],
        ["sweep"],
    ],
)
def test_read_only_command_on_a_missing_data_dir_fails_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "hookflash-dtaa"
    result = invoke(*command, "--data-dir", typo)
    assert_clean_error(result, f"error: no hookflash data in {typo} ({NO_DATA}")
    assert not typo.exists()


def test_read_only_command_reads_the_data_dir_from_the_environment(tmp_path: Path) -> None:
    typo = tmp_path / "typo"
    assert_clean_error(invoke("accounts", "list", env={"HOOKFLASH_DATA_DIR": str(typo)}), str(typo))
    assert not typo.exists()


# -- item 5: corrupt databases and unusable paths ----------------------------------------------


@pytest.mark.parametrize(
    "command", [["audit"], ["devices", "list"], ["accounts", "list"], ["receipts", "show", "r-1"]]
)
def test_corrupt_registry_is_one_line_naming_the_file(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "registry.db").write_bytes(b"this is not an sqlite database" * 200)
    result = invoke(*command, "--data-dir", tmp_path)
    assert_clean_error(result, str(tmp_path / "registry.db"), "not a database")


def test_import_into_a_corrupt_registry_is_one_line_naming_the_file(tmp_path: Path) -> None:
    devices = tmp_path / "devices.csv"
    devices.write_text(HEADER + "000b82000001,a1,G,HT812,,snmp,h,\n")
    (tmp_path / "registry.db").write_bytes(b"garbage" * 1000)
    result = invoke("devices", "import", devices, "--data-dir", tmp_path)
    assert_clean_error(result, str(tmp_path / "registry.db"))


@pytest.mark.parametrize("command", [["query"], ["quarantine"], ["privacy", "export", "a1"]])
def test_corrupt_telemetry_store_is_one_line_naming_the_file(tmp_path: Path, command: list[str]) -> None:
    data_dir = imported(tmp_path, "000b82000001,a1,G,HT812,,snmp,h,\n")
    (data_dir / "telemetry.db").write_bytes(b"garbage" * 1000)
    result = invoke(*command, "--data-dir", data_dir)
    assert_clean_error(result, str(data_dir / "telemetry.db"))


def test_data_dir_below_a_regular_file_is_one_line(tmp_path: Path) -> None:
    devices = tmp_path / "devices.csv"
    devices.write_text(HEADER + "000b82000001,a1,G,HT812,,snmp,h,\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("devices", "import", devices, "--data-dir", blocker / "data")
    assert_clean_error(result, str(blocker / "data"), "Not a directory")


def write_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "hookflash.toml"
    config.write_text("[snmp]\nenabled = false\n" + text)
    return config


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "HOOKFLASH_DATA_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "collector.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**environ, **(env or {})},
    )


def test_run_with_data_dir_in_the_config_being_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    config = write_config(tmp_path, "")
    config.write_text('data_dir = "data"\n' + config.read_text())
    result = run_cli("run", "-c", config)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert f"data dir {tmp_path / 'data'} is not a folder" in result.stderr


# -- item 7: `hookflash run` honours HOOKFLASH_DATA_DIR ------------------------------------------


def test_run_takes_its_data_dir_from_the_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "from-env"
    data_dir.mkdir()
    (data_dir / "registry.db").write_bytes(b"garbage" * 1000)
    result = run_cli("run", "-c", write_config(tmp_path, ""), env={"HOOKFLASH_DATA_DIR": str(data_dir)})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: {data_dir / 'registry.db'}: cannot open the database" in result.stderr
    assert not (tmp_path / "hookflash-data").exists()


# -- item 4: config validation --------------------------------------------------------------------


@pytest.mark.parametrize("good", ["hookflash/+/+", "hookflash/#", "#", "+", "a/+/b/#"])
def test_valid_mqtt_subscription_filters(good: str) -> None:
    assert MqttConfig(wildcard_filter=good).wildcard_filter == good


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "non-empty"),
        ("hookflash/#/x", "'#' must be the whole last level"),
        ("hookflash/x#", "'#' must be the whole last level"),
        ("hookflash/x+/y", "'+' must be a whole level"),
        ("hookflash/\x00", "NUL"),
    ],
)
def test_invalid_mqtt_subscription_filter_is_a_config_error(tmp_path: Path, bad: str, reason: str) -> None:
    escaped = bad.replace("\x00", "\\u0000")
    config = write_config(tmp_path, f'[mqtt]\nsubscribe = "wildcard"\nwildcard_filter = "{escaped}"\n')
    with pytest.raises(ConfigError, match=r"mqtt\.wildcard_filter") as caught:
        load_config(config)
    assert reason in str(caught.value) and str(config) in str(caught.value)


def test_empty_mqtt_host_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.host: mqtt host must not be empty"):
        load_config(write_config(tmp_path, '[mqtt]\nhost = ""\n'))


def test_config_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes("# Zürich office\n[snmp]\nenabled = false\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        load_config(config)
    assert str(config) in str(caught.value)
    result = run_cli("run", "-c", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {config}: config is not UTF-8" in result.stderr


# -- item 2: user text is printed as is: no markup, no emoji ---------------------------------------


def test_markup_and_emoji_codes_in_device_data_are_printed_literally(tmp_path: Path) -> None:
    data_dir = imported(tmp_path, "000b82000001,a1,[/red],0:b:82:aa:bb:2,,snmp,h,\n")
    result = invoke("devices", "list", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert "[/red]" in result.stdout and "0:b:82:aa:bb:2" in result.stdout
    assert "\U0001f171" not in result.stdout  # :b: is not turned into an emoji


def test_markup_and_emoji_codes_in_error_messages_are_printed_literally(tmp_path: Path) -> None:
    devices = tmp_path / "[red]devices.csv"
    devices.write_text(HEADER + "[/red],a1,G,HT812,,snmp,h,\n0:b:82:aa:bb:2,a1,G,HT812,,snmp,h,\n")
    result = invoke("devices", "import", devices, "--data-dir", tmp_path / "data")
    assert_clean_error(
        result,
        "[red]devices.csv:line 2: id: not a MAC address: '[/red]'",
        "line 3: id: not a MAC address: '0:b:82:aa:bb:2'",
    )
    assert "\U0001f171" not in result.stderr


# -- item 1: troubleshooting windows are brief (P8) -----------------------------------------------


def test_debug_window_longer_than_seven_days_is_refused(tmp_path: Path) -> None:
    data_dir = imported(tmp_path, "000b82000001,a1,G,HT812,,snmp,h,\n")
    result = invoke("devices", "debug", "000b82000001", "--for", "8d", "--data-dir", data_dir)
    assert_clean_error(result, "--for 8d: troubleshooting windows last at most 7 days")
    result = invoke("devices", "debug", "000b82000001", "--for", "2w", "--data-dir", data_dir)
    assert_clean_error(result, "at most 7 days")
    result = invoke("devices", "debug", "000b82000001", "--for", "7d", "--data-dir", data_dir)
    assert result.exit_code == 0 and "open until" in result.stdout


# -- items 3 and 8 through the CLI ---------------------------------------------------------------


def test_import_rejects_a_reused_topic_and_an_unknown_profile(tmp_path: Path) -> None:
    devices = tmp_path / "devices.csv"
    devices.write_text(
        HEADER
        + "805ec0000001,a1,Yealink,T54W,yealink-t5x,mqtt,hookflash/x,\n"
        + "805ec0000002,a1,Yealink,T54W,,mqtt,hookflash/x,\n"
        + "805ec0000003,a1,Yealink,T54W,yealink-t9x,mqtt,hookflash/z,\n"
    )
    result = invoke("devices", "import", devices, "--data-dir", tmp_path / "data")
    assert_clean_error(
        result,
        "line 3: topic hookflash/x already used by device 805ec0000001 on line 2",
        "line 4: profile: unknown profile 'yealink-t9x'; known: ",
        "yealink-t5x",
    )
    assert not (tmp_path / "data" / "registry.db").exists()


# -- item 11: the demo never claims status changes that did not happen -----------------------------


def test_demo_summary_before_halfway_says_the_changes_did_not_happen() -> None:
    lines = status_summary({})
    assert len(lines) == 2
    assert all("did not happen" in line for line in lines)
    assert not any(" is inactive" in line or " is revoked" in line for line in lines)
    done = status_summary({INACTIVE_ACCOUNT: "inactive", REVOKED_ACCOUNT: "revoked"})
    assert done == [
        f"{INACTIVE_ACCOUNT} is inactive (its data stays).",
        f"{REVOKED_ACCOUNT} is revoked (its data was erased or anonymized).",
    ]


@pytest.mark.slow
def test_demo_interrupted_before_halfway(tmp_path: Path) -> None:
    proc = start_demo(tmp_path / "demo", devices=4, duration=120, period=0.5)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # the first progress line comes once the service runs
        if "devices seen" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"{INACTIVE_ACCOUNT} was not set inactive" in out and "did not happen" in out
    assert f"{REVOKED_ACCOUNT} was not set revoked" in out
    assert "is revoked" not in out and "was erased" not in out


def many_records(tmp_path: Path, count: int = 3000) -> Path:
    """A data dir whose `query --format json` output is far larger than a pipe's buffer."""
    from collector.retention import load_policy
    from collector.sinks.sqlite import EmbeddedStore
    from factories import record, snmp_device
    from provisioning.registry import Registry

    data_dir = tmp_path / "data"
    device = snmp_device(1, "a1")
    Registry(data_dir / "registry.db").import_devices([device], source="t")
    store = EmbeddedStore.open(data_dir / "telemetry.db")
    policy = load_policy()
    store.sink.write(
        [record(policy, device, Kind.SIGNAL, {"wifi_rssi_dbm": -n % 90}, minutes=n) for n in range(count)]
    )
    store.close()
    return data_dir


def test_a_closed_pipe_ends_the_output_quietly_with_status_0(tmp_path: Path) -> None:
    data_dir = many_records(tmp_path)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.cli.main",
            "query",
            "--format",
            "json",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline().startswith(b'{"account_id"')
    reader.stdout.close()  # as `| head -1` does: the rest (about 600 kB) has nowhere to go
    assert reader.wait(30) == 0
    assert reader.stderr.read() == b""


def test_a_read_only_data_dir_is_named_as_such(tmp_path: Path) -> None:
    """On a real read-only file system (a read-only bind mount in a mount namespace of its
    own). SQLite's write-ahead log needs its shared-memory file even to read, so reads are
    refused too; either way the message says what is wrong."""
    data_dir = many_records(tmp_path, 10)
    script = (
        f"mount --bind -o ro {tmp_path} {tmp_path} && exec {sys.executable} -m collector.cli.main "
        f"{{}} --data-dir {data_dir}"
    )

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unshare", "-m", "sh", "-c", script.format(command)], capture_output=True, text=True, timeout=60
        )

    for command, expected in (("query", "read-only"), ("accounts suspend a1", "read-only")):
        done = run(command)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "corrupt" not in done.stderr


def test_permission_errors_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may read anything, so the check of what this user may do is made to say no."""
    data_dir = imported(tmp_path, "000b82000001,a1,G,HT812,,snmp,h,\n")
    (data_dir / "telemetry.db").write_bytes(b"garbage" * 1000)
    denied = str(data_dir / "telemetry.db")
    monkeypatch.setattr(os, "access", lambda path, mode: not (str(path) == denied and mode & os.R_OK))
    assert_clean_error(invoke("query", "--data-dir", data_dir), "permission denied: this user cannot read it")
