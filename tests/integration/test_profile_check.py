"""`hookflash profiles check` against a real snmpd made to look like an HT812, with one
declared field missing and one object the profile does not declare."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from collector.cli.main import cli
from collector.profiles import load_profiles
from factories import served
from services import SnmpdFactory, V3User

EXTRA = "1.3.6.1.4.1.42397.1.2.77.0"


def check(profile: str, port: int, config: Path) -> Result:
    """`hookflash profiles check PROFILE` against the agent, with the config's set `lab`."""
    args = [
        "profiles",
        "check",
        profile,
        "--agent",
        f"127.0.0.1:{port}",
        "--credential",
        "lab",
        "-c",
        str(config),
    ]
    return CliRunner().invoke(cli, args)


CREDENTIALS = {
    "v2c": '[credentials.lab]\ncommunity = "check-secret"\n',
    "v3": '[credentials.lab]\nversion = "v3"\nuser = "checker"\nauth_protocol = "SHA-256"\n'
    'auth_key_env = "CHECK_AUTH"\npriv_protocol = "AES-128"\npriv_key_env = "CHECK_PRIV"\n',
}


@pytest.mark.parametrize("version", sorted(CREDENTIALS))
def test_check_reports_each_field_the_missing_one_and_what_is_undeclared(
    tmp_path: Path, snmpd_factory: SnmpdFactory, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setenv("CHECK_AUTH", "check-auth-secret")
    monkeypatch.setenv("CHECK_PRIV", "check-priv-secret")
    profile = load_profiles().get("grandstream-ht8xx")
    specs = list(profile.snmp)
    missing = next(s for s in specs if s.field == "line2_state")
    overrides = {s.oid: served(s)[0] for s in specs if s is not missing}
    overrides[EXTRA] = ("octet_str", "not in the profile")
    user = V3User("checker", "SHA-256", "check-auth-secret", "AES", "check-priv-secret")
    agent = snmpd_factory(overrides, community="check-secret", v3_users=[user])
    config = tmp_path / "hookflash.toml"
    config.write_text(CREDENTIALS[version])
    result = check("grandstream-ht8xx", agent.port, config)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "1 declared field(s) missing: line2_state" in text
    assert EXTRA in text and "not in the profile" in text
    mode = next(s for s in specs if s.field == "network_mode")
    assert repr(served(mode)[1]) in text  # a converted value is shown
    assert not any(s in result.output for s in ("check-secret", "check-auth", "check-priv"))  # P7


def test_check_refuses_an_unknown_credential(tmp_path: Path) -> None:
    config = tmp_path / "hookflash.toml"
    config.write_text("")
    result = CliRunner().invoke(
        cli,
        ["profiles", "check", "generic", "--agent", "127.0.0.1:1", "--credential", "nope", "-c", str(config)],
    )
    assert result.exit_code == 2 and "no credential set 'nope'" in result.output


def test_a_new_profile_from_a_walk_checks_clean_against_its_agent(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    """The README's walk-through for a model no profile covers: walk, new, show, check."""
    agent = snmpd_factory(
        {
            "1.3.6.1.4.1.99999.1.1.0": ("octet_str", "ACME-7 v2.3.1"),
            "1.3.6.1.4.1.99999.1.2.0": ("integer", 3),
            "1.3.6.1.4.1.99999.1.3.0": ("gauge", 41),
            "1.3.6.1.4.1.99999.1.4.0": ("timeticks", 12345),
        },
        community="walk-secret",
    )
    target = ["-v2c", "-c", "walk-secret", "-On", f"127.0.0.1:{agent.port}"]
    walk = "".join(
        subprocess.run(
            ["snmpwalk", *target, root], capture_output=True, text=True, check=True, timeout=20
        ).stdout
        for root in (".1.3.6.1.2.1.1", ".1.3.6.1.4.1.99999")
    )
    (tmp_path / "walk.txt").write_text(walk)
    (tmp_path / "profiles").mkdir()
    config = tmp_path / "hookflash.toml"
    config.write_text('profile_dirs = ["profiles"]\n[credentials.lab]\ncommunity = "walk-secret"\n')
    made = CliRunner().invoke(
        cli,
        ["profiles", "new", "--from-walk", str(tmp_path / "walk.txt"), "--vendor", "Acme", "--model", "A7",
         "-o", str(tmp_path / "profiles" / "acme-a7.toml")],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    text = (tmp_path / "profiles" / "acme-a7.toml").read_text()
    assert 'oid = "1.3.6.1.4.1.99999.1.4.0"' in text and 'type = "timeticks_s"' in text
    assert 'oid = "1.3.6.1.2.1.1.3.0"' not in text  # generic reads sysUpTime already
    shown = CliRunner().invoke(cli, ["profiles", "show", "acme-a7", "-c", str(config), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    checked = check("acme-a7", agent.port, config)
    text = " ".join(checked.output.split())
    assert "'ACME-7 v2.3.1'" in text and "123" in text
    # generic's ENTITY-MIB fields are missing on this agent, and are the only ones
    missing = text.split("declared field(s) missing: ")[-1] if "missing:" in text else ""
    assert "f_99999" not in missing, checked.output
