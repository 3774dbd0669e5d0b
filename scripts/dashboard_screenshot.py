"""Make docs/dashboard.png: run `hookflash demo`, open its dashboard in headless Chromium
(Debian `chromium` and `chromium-driver`), wait for the data, take a screenshot.

Usage: python scripts/dashboard_screenshot.py [OUT.png]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.support.ui import WebDriverWait

OUT = Path(
    sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "dashboard.png"
)


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="hookflash-shot-")) / "demo"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.cli.main",
            "demo",
            "--devices",
            "60",
            "--duration",
            "45",
            "--period",
            "1",
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert demo.stdout is not None
    url = demo.stdout.readline().split()[1]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1500",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        time.sleep(15)  # let the simulated fleet report, upgrade and misbehave for a while
        driver.get(f"{url}?model=HT812&target=1.0.47.4")
        WebDriverWait(driver, 30).until(
            lambda d: (
                d.execute_script("return Number(document.querySelector('#status').dataset.ticks || 0)") > 1
            )
        )
        driver.save_screenshot(str(OUT))
        print(f"saved {OUT}")
    finally:
        driver.quit()
        demo.terminate()
        demo.wait(60)


if __name__ == "__main__":
    main()
