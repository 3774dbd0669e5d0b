"""The NOC dashboard in a real browser: headless Chromium (Debian `chromium` and
`chromium-driver`) loads the page from a running hookflash, waits for the live data,
checks what it shows (fleet counts, firmware bars, rollout numbers, lists, alerts), sees
new data arrive without a reload, and saves a screenshot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from collector.config import ApiConfig, MqttConfig, ServiceConfig, SnmpConfig
from collector.config.alerts import AlertsConfig, FirmwareRegressedRule
from collector.config.views import ViewsConfig
from collector.core.interfaces import Verdict
from collector.core.records import Kind, Observation
from rollout_fleet import ID, MODEL, NEWER, OLD, TARGET, Times, write_fleet
from runner import RunningService
from services import free_port

TOKEN = "dashboard-token-0123456789abcdef"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1700",
        # Loopback only: none of Chromium's own background traffic.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--disable-domain-reliability",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text(driver: WebDriver, selector: str) -> str:
    """The element's rendered text, read in one script call: the page redraws its lists on every
    refresh, so an element handle from a moment ago may already be gone."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector
    )
    return str(found).strip()


def bars(driver: WebDriver, model: str) -> list[tuple[str, str, float]]:
    """(version, devices, width in px) of each bar of the model's firmware chart row."""
    found = driver.execute_script(
        "return [...document.querySelectorAll(`.fw-bar[data-model='${arguments[0]}']`)]"
        ".map(b => [b.dataset.version, b.dataset.devices, b.getBoundingClientRect().width]);",
        model,
    )
    return [(str(v), str(n), float(w)) for v, n, w in found]


def wait_for(driver: WebDriver, selector: str, expected: str, what: str) -> None:
    try:
        WebDriverWait(driver, 30, poll_frequency=0.1).until(lambda d: text(d, selector) == expected)
    except Exception:
        raise AssertionError(
            f"{what}: {selector} shows {text(driver, selector)!r}, not {expected!r}"
        ) from None


def submit(running: RunningService, observations: list[Observation]) -> None:
    assert running.service is not None
    intake = running.service.intake

    async def go() -> list[bool]:
        return [intake.derived(o) is Verdict.QUEUED for o in observations]

    assert all(asyncio.run_coroutine_threadsafe(go(), running.loop).result(10))


def test_dashboard_shows_the_fleet_and_updates_live(
    tmp_path: Path, browser: WebDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DASH_TOKEN", TOKEN)
    now = datetime.now(UTC)
    t = Times(base=now - timedelta(hours=57))  # the rollout began 27 h ago; F2 was last seen 2 h ago
    write_fleet(tmp_path, t)
    config = ServiceConfig(
        data_dir=tmp_path,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
        api=ApiConfig(enabled=True, port=free_port("tcp"), token_env="TEST_DASH_TOKEN"),
        views=ViewsConfig(refresh_s=0.5),
        alerts=AlertsConfig(
            enabled=True,
            interval_s=0.2,
            rules=[FirmwareRegressedRule(name="regressed", type="firmware_regressed")],
        ),
    )
    with RunningService(config) as running:
        assert running.service is not None
        base = f"http://127.0.0.1:{running.service.api_port}"
        browser.get(f"{base}/?model={MODEL}&target={TARGET}")
        wait_for(browser, "#status", "token needed", "the token prompt")
        browser.find_element(By.ID, "token-input").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()

        wait_for(browser, "[data-stat=devices]", "14", "fleet size")
        assert {
            s: text(browser, f"[data-stat={s}]")
            for s in ("online", "offline", "never_seen", "registered", "unregistered", "poor_quality")
        } == {
            "online": "0",
            "offline": "13",
            "never_seen": "1",
            "registered": "7",
            "unregistered": "5",
            "poor_quality": "0",
        }
        chart = bars(browser, MODEL)
        assert {v: n for v, n, _ in chart} == {NEWER: "1", TARGET: "5", OLD: "6", "unknown": "1"}
        widths = {v: w for v, _, w in chart}
        assert widths[OLD] > widths[TARGET] > widths[NEWER] > 0, "bar widths follow the counts (6 > 5 > 1)"

        wait_for(browser, "[data-rollout=on_target]", "4", "rollout progress")
        assert {
            s: text(browser, f"[data-rollout={s}]")
            for s in ("ahead", "pending", "failed", "regressed", "straggler")
        } == {
            "ahead": "1",
            "pending": "1",
            "failed": "2",
            "regressed": "2",
            "straggler": "3",
        }
        assert "38.46% of 13 devices" in text(browser, "#rollout-summary")
        assert text(browser, "[data-cohort=before]").split()[:6] == [
            "before",
            "6",
            "12",
            "4.30",
            "0.60",
            "12.0",
        ]
        assert text(browser, "[data-cohort=after]").split()[:6] == [
            "after",
            "6",
            "12",
            "3.70",
            "2.00",
            "35.0",
        ]
        assert text(browser, "[data-cohort=delta]").split()[-1] == "%"  # registration -50.00 %
        listed = text(browser, "#rollout-devices")
        assert ID["RG1"] in listed and "went back to 1.0.43.11" in listed and ID["S3"] in listed

        assert text(browser, "#offline-table tbody tr td").startswith(ID["F2"])  # most recently lost first
        assert text(browser, ".pager[data-list=offline] span") == "1\u201310 of 14"
        wait_for(browser, "[data-stat=alerts]", "1", "the firmware-regressed alert")
        assert ID["RG1"] in text(browser, "#alerts-table")

        # Live: U1 reports now, with a poor call. The page changes without a reload.
        browser.execute_script("window.__notReloaded = true;")
        at = datetime.now(UTC)
        submit(
            running,
            [
                Observation(
                    device_id=ID["U1"],
                    kind=Kind.REGISTRATION,
                    observed_at=at,
                    fields={"line1_state": "registered", "line2_state": "unregistered"},
                    source="snmp",
                ),
                Observation(
                    device_id=ID["U1"],
                    kind=Kind.CALL_QUALITY,
                    observed_at=at,
                    fields={"mos": 2.1, "jitter_ms": 80, "loss_pct": 6.5},
                    source="snmp",
                ),
            ],
        )
        wait_for(browser, "[data-stat=online]", "1", "U1 online after its new report")
        wait_for(browser, "[data-stat=poor_quality]", "1", "U1's poor call")
        wait_for(browser, "[data-stat=unregistered]", "4", "U1 registered again")
        assert text(browser, "#quality-table tbody tr").split() == [
            ID["U1"],
            MODEL,
            TARGET,
            "2.10",
            "6.50",
            "80",
        ]
        assert browser.execute_script("return window.__notReloaded === true;")
        assert browser.execute_script("return Number(document.querySelector('#status').dataset.ticks)") > 1

        # Everything the page loaded came from this hookflash: no CDN, no other host.
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(url.startswith(base) for url in loaded), loaded

        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_dashboard_asks_for_the_token(
    tmp_path: Path, browser: WebDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DASH_TOKEN", TOKEN)
    write_fleet(tmp_path, Times(base=datetime.now(UTC) - timedelta(hours=57)))
    config = ServiceConfig(
        data_dir=tmp_path,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
        api=ApiConfig(enabled=True, port=free_port("tcp"), token_env="TEST_DASH_TOKEN"),
    )
    with RunningService(config) as running:
        assert running.service is not None
        base = f"http://127.0.0.1:{running.service.api_port}"
        browser.get(f"{base}/")
        wait_for(browser, "#status", "token needed", "the token prompt")
        assert browser.find_element(By.ID, "token-form").is_displayed()
        assert text(browser, "[data-stat=devices]") == "\u2013"  # nothing shown without the token
        browser.find_element(By.ID, "token-input").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait_for(browser, "[data-stat=devices]", "14", "data once the token is given")
        assert not browser.find_element(By.ID, "token-form").is_displayed()
        kept = browser.execute_script(
            "return JSON.stringify([sessionStorage, localStorage, document.cookie]);"
        )
        assert TOKEN not in kept and TOKEN not in browser.current_url  # in memory only
        browser.get(f"{base}/?again=1#token={TOKEN}")  # a link carrying a token is not taken
        wait_for(browser, "#status", "token needed", "the prompt again: no token from a URL")
        assert TOKEN not in browser.current_url
