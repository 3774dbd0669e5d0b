"""Run the real Service on its own event loop in a thread, so a test can block, sleep and
call other processes (snmpget, the CLI) while collection goes on."""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from collector.config import ServiceConfig
from collector.runtime.service import Service


class RunningService:
    def __init__(self, config: ServiceConfig, prepare: Callable[[Service], None] | None = None) -> None:
        """`prepare` may adjust the service after it is built and before it starts."""
        self.config = config
        self._prepare = prepare
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="service-loop", daemon=True)
        self.service: Service | None = None

    def __enter__(self) -> Self:
        self._thread.start()

        async def start() -> Service:
            service = Service(self.config)
            if self._prepare is not None:
                self._prepare(service)
            await service.start()
            return service

        self.service = asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=15)
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.service is not None:
            asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(timeout=15)
        # The loop's worker threads (asyncio.to_thread) end with it, not with the test run.
        asyncio.run_coroutine_threadsafe(self.loop.shutdown_default_executor(), self.loop).result(timeout=15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        # Service.start froze the objects alive then (tune_gc): right for a process that runs
        # one service, but here the next test runs another, and a frozen object in a cycle
        # (a connection, a socket) would never be collected: 15-20 fds a test, and past
        # 1,024 paho's select() fails. Give them back to the collector.
        gc.unfreeze()
        gc.collect()

    @property
    def stats(self):  # type: ignore[no-untyped-def]
        assert self.service is not None
        return self.service.stats


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_demo(data_dir: Path, devices: int, duration: float, period: float) -> subprocess.Popen[str]:
    """`hookflash demo` in another process, its output unbuffered and piped, as a user runs it."""
    options = {"--devices": devices, "--duration": duration, "--period": period, "--data-dir": data_dir}
    return subprocess.Popen(
        [sys.executable, "-m", "collector.cli.main", "demo", *(str(x) for kv in options.items() for x in kv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def hookflash(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in another process, as an operator or a billing system would."""
    return subprocess.run(
        [sys.executable, "-m", "collector.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def count_rows(database: Path, sql: str) -> int:
    """One count from a file hookflash wrote, read the way any other tool would."""
    db = sqlite3.connect(database)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def lab_profile(tmp_path: Path, name: str, text: str) -> Path:
    """A profile directory holding one profile file, for a test's config `profile_dirs`."""
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(text)
    return folder
