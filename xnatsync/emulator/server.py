"""Running the emulator: `run_emulator(config)` is an async context manager that seeds the store,
binds (127.0.0.1, port 0 by default) and yields an `Emulator` handle for tests and the CLI.

Without `config.root` the archive lives in a temporary directory removed on exit and metadata is
never written; with a root, metadata is flushed while serving and saved on exit, so a restart
with the same root serves the same archive.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from xnatsync.emulator.app import build_app
from xnatsync.emulator.auth import SESSIONS_KEY
from xnatsync.emulator.faults import Faults, RequestLog
from xnatsync.emulator.seed import seed
from xnatsync.emulator.sessions import Sessions
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.emulator.store import Store


@dataclass(slots=True)
class Emulator:
    """A running emulator: where it listens and its live state."""

    url: str
    host: str
    port: int
    config: EmulatorConfig
    store: Store
    faults: Faults
    requests: RequestLog
    sessions: Sessions
    app: web.Application
    seed_seconds: float

    def auth(self, username: str | None = None) -> dict[str, str]:
        """An `Authorization` header with a configured user's Basic credentials (default admin)."""
        users = {u.username: u for u in self.config.users()}
        user = users[username or self.config.admin_user]
        return {"Authorization": aiohttp.encode_basic_auth(user.username, user.password)}


@asynccontextmanager
async def run_emulator(config: EmulatorConfig | None = None) -> AsyncIterator[Emulator]:
    """Seed, serve and finally tear down one emulator."""
    config = config or EmulatorConfig()
    temporary = None if config.root else pathlib.Path(tempfile.mkdtemp(prefix="xnat-emulator-"))
    root = config.root or temporary
    assert root is not None
    try:
        store = Store.open(root, config.site_id)
        seconds = seed(store, config) if config.root else _seed_volatile(store, config)
        faults, log = Faults(config.faults), RequestLog()
        app = build_app(store, config, faults, log=log, persist=config.root is not None)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            yield Emulator(
                f"http://{host}:{port}", host, port, config, store, faults, log,
                app[SESSIONS_KEY], app, seconds,
            )  # fmt: skip
        finally:
            await runner.cleanup()
            if config.root:
                store.save()
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _seed_volatile(store: Store, config: EmulatorConfig) -> float:
    seconds = seed(store, config)
    store.dirty = False
    (store.root / "metadata.json").unlink(missing_ok=True)
    return seconds
