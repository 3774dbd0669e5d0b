"""How long the `hookflash` command takes to answer, against bare Python importing click.

Each command runs in a new process, the way a user or a billing script runs it: the
`hookflash` console script installed beside this interpreter (falling back to
`python -m collector.cli.main`), wall time from spawn to exit. Commands:

- `hookflash --help`
- `hookflash accounts revoke ACCOUNT` on a data dir with 50 accounts (collection stopped
  and erased; no collector is running, so none is waited for)
- `hookflash query --account ACCOUNT` on the same data dir

Baseline: `python -c "import click"`, the floor any click program pays. Each command and
the baseline run five times (after one warm-up run each, so the page cache is the same
for both, and the bytecode is compiled as an installed package's is); the median of each
is compared.

Usage: python bench/cli_start.py
RESULT: cli_start_ratio is the slowest command's median over the baseline's median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from factories import snmp_device  # noqa: E402
from provisioning.registry import Registry  # noqa: E402

RUNS = 5


def hookflash_command() -> list[str]:
    script = Path(sys.executable).with_name("hookflash")
    if script.exists():
        return [str(script)]
    found = shutil.which("hookflash")
    if found and "shims" not in found:  # a version manager's shim adds its own start-up
        return [found]
    return [sys.executable, "-m", "collector.cli.main"]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def median_of(make_args: list[list[str]], env: dict[str, str]) -> float:
    """Median wall time; `make_args` gives one argument list per run (a warm-up first)."""
    timed(make_args[0], env)
    return statistics.median(timed(args, env) for args in make_args[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hookflash-bench-cli-"))
    try:
        data = work / "data"
        Registry(data / "registry.db").import_devices(
            [snmp_device(n, f"acct-{n:03d}") for n in range(1, 51)], source="bench"
        )
        # As from an installed package: pip compiles the modules' bytecode when it installs,
        # so they are not compiled again at every start (an editable checkout under
        # PYTHONDONTWRITEBYTECODE would compile ~50 modules each time; the warm-up run of
        # each command writes them here instead).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["HOOKFLASH_DATA_DIR"] = str(data)
        base = hookflash_command()
        baseline = median_of([[sys.executable, "-c", "import click"]] * (RUNS + 1), env)
        medians = {
            "help": median_of([[*base, "--help"]] * (RUNS + 1), env),
            "revoke": median_of(
                [[*base, "accounts", "revoke", f"acct-{n:03d}"] for n in range(1, RUNS + 2)], env
            ),
            "query": median_of([[*base, "query", "--account", "acct-040"]] * (RUNS + 1), env),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, value in medians.items():
        print(f"{name:8} {value * 1000:7.0f} ms  ({value / baseline:.2f}x `python -c 'import click'`)")
    print(f"baseline {baseline * 1000:7.0f} ms  ({' '.join(base)})")
    ratio = max(medians.values()) / baseline
    parts = " ".join(f"{k}_ms={v * 1000:.0f}" for k, v in medians.items())
    print(f"RESULT cli_start_ratio={ratio:.2f} baseline_ms={baseline * 1000:.0f} {parts}")


if __name__ == "__main__":
    main()
