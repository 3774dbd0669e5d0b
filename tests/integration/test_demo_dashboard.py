"""`hookflash demo` serves the NOC dashboard on 127.0.0.1 and prints its URL first; the
page and its data answer while the demo runs."""

from __future__ import annotations

from pathlib import Path

import httpx

from runner import eventually, start_demo


def test_demo_prints_the_dashboard_url_and_serves_it(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo", devices=12, duration=12, period=0.5)
    try:
        assert demo.stdout is not None
        first = demo.stdout.readline()
        assert first.startswith("dashboard: http://127.0.0.1:"), first
        url = first.split()[1]
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "hookflash" in page.text and 'src="static/app.js"' in page.text
        assert httpx.get(url + "static/app.js", timeout=10).status_code == 200

        def devices_seen() -> bool:
            summary = httpx.get(url + "v1/fleet/summary", timeout=10).json()  # reads are open in the demo
            return bool(summary["devices"] == 12 and summary["online"] > 0)

        eventually(devices_seen, 30, "the demo fleet in the summary")
        firmware = httpx.get(url + "v1/fleet/firmware", timeout=10).json()
        assert {m["model"] for m in firmware} == {"HT812", "HT802", "T54W", "T46U"}
        assert httpx.post(url + "v1/deactivations", json={}, timeout=10).status_code == 401  # still guarded
        out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, err
    assert "hookflash rollout status --model HT812 --target 1.0.47.4" in out
