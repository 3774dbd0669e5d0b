#!/usr/bin/env bash
# Install everything the test suite needs (Debian packages for the real services the
# tests start, the package with its test extras), then run ruff, mypy, the architecture's
# import contracts (lint-imports, contracts in pyproject.toml) and pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k mqtt`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
[ -x /usr/sbin/snmpd ] || need+=(snmpd)
command -v snmpget >/dev/null || need+=(snmp)
[ -x /usr/bin/victoria-metrics ] || need+=(victoria-metrics)
[ -x /usr/bin/chromium ] || need+=(chromium)            # the dashboard's headless-browser test
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ -x /usr/bin/linphonec ] || need+=(linphone-cli)             # a real phone for the SIP source
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)  # the PostgreSQL backend's server
command -v runuser >/dev/null || need+=(util-linux)           # initdb/pg_ctl run as a dedicated user
if ((${#need[@]})); then
    echo "installing Debian packages: ${need[*]}"
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -m pip install -q -e '.[test]'
echo "== ruff";  python3 -m ruff check .
echo "== mypy";  python3 -m mypy
echo "== lint-imports"; lint-imports --no-cache
echo "== pytest"; python3 -m pytest -q "$@"
