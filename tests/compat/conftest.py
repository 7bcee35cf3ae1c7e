"""Fixtures of the compatibility suite: one emulator (seeded `demo`) serving in a background
thread with its own event loop, so the synchronous clients under test (xnatpy, pyxnat) never
run inside the emulator's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import xnat
from pyxnat import Interface

from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig


class BackgroundEmulator:
    """Runs `run_emulator(config)` on a private loop in a daemon thread until `stop()`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.emulator: Emulator | None = None
        self._thread = threading.Thread(target=self._run, name="xnat-emulator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        async with run_emulator(self._config) as emulator:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.emulator = emulator
            self._ready.set()
            await self._stop.wait()

    def start(self) -> Emulator:
        self._thread.start()
        if not self._ready.wait(timeout=60):
            raise RuntimeError("emulator did not start within 60 s")
        if self._error is not None or self.emulator is None:
            raise RuntimeError("emulator failed to start") from self._error
        return self.emulator

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """A demo-seeded emulator for the whole compat session (admin / admin)."""
    background = BackgroundEmulator(EmulatorConfig(seed="demo"))
    try:
        yield background.start()
    finally:
        background.stop()


@pytest.fixture(scope="module")
def session(emulator: Emulator) -> Iterator[Any]:
    """An xnatpy session as admin, one per test module."""
    connection = xnat.connect(emulator.url, user="admin", password="admin", loglevel="ERROR")
    try:
        yield connection
    finally:
        connection.disconnect()


@pytest.fixture(scope="module")
def interface(emulator: Emulator) -> Iterator[Any]:
    """A pyxnat Interface as admin, one per test module."""
    connection = Interface(server=emulator.url, user="admin", password="admin")
    try:
        yield connection
    finally:
        connection.disconnect()
