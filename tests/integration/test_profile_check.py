"""`hookflash profiles check` against a real snmpd made to look like an HT812, with one
declared field missing and one object the profile does not declare."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from collector.cli.main import cli
from collector.profiles import load_profiles
from factories import served
from services import SnmpdFactory

EXTRA = "1.3.6.1.4.1.42397.1.2.77.0"


def test_check_reports_each_field_the_missing_one_and_what_is_undeclared(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    profile = load_profiles().get("grandstream-ht8xx")
    specs = list(profile.snmp)
    missing = next(s for s in specs if s.field == "calls")
    overrides = {s.oid: served(s)[0] for s in specs if s is not missing}
    overrides[EXTRA] = ("octet_str", "not in the profile")
    agent = snmpd_factory(overrides, community="check-secret")
    config = tmp_path / "hookflash.toml"
    config.write_text('[credentials.lab]\ncommunity = "check-secret"\n')
    result = CliRunner().invoke(
        cli,
        [
            "profiles",
            "check",
            "grandstream-ht8xx",
            "--agent",
            f"127.0.0.1:{agent.port}",
            "--credential",
            "lab",
            "-c",
            str(config),
        ],
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "1 declared field(s) missing: calls" in text
    assert EXTRA in text and "not in the profile" in text
    mos = next(s for s in specs if s.field == "mos")
    assert repr(served(mos)[1]) in text  # a converted value is shown
    assert "check-secret" not in result.output  # P7


def test_check_refuses_an_unknown_credential(tmp_path: Path) -> None:
    config = tmp_path / "hookflash.toml"
    config.write_text("")
    result = CliRunner().invoke(
        cli,
        ["profiles", "check", "generic", "--agent", "127.0.0.1:1", "--credential", "nope", "-c", str(config)],
    )
    assert result.exit_code == 2 and "no credential set 'nope'" in result.output
