"""Running the emulator: `run_emulator(config)` is an async context manager that seeds the store,
binds (127.0.0.1, port 0 by default) and yields an `Emulator` handle for tests and the CLI.

Without `config.root` the archive lives in a temporary directory removed on exit and metadata is
never written; with a root, metadata is flushed while serving and saved on exit, so a restart
with the same root serves the same archive.

The public port is aiohttp's site, or, when the fault SPEC has `stream=RATE`, a `ShapingProxy`
in front of a private loopback site. An `OutageKeeper` closes and re-opens it for `refuse`
outages; `Emulator.outage()` / `Emulator.end_outage()` start and end one now.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from xnatsync.emulator.faults import Faults
from xnatsync.emulator.outage import Listener, OutageKeeper, SiteListener
from xnatsync.emulator.pacing import ShapingProxy
from xnatsync.emulator.requestlog import RequestLog
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
    keeper: OutageKeeper

    async def outage(self, seconds: float | None = None, mode: str = "refuse") -> None:
        """Start an outage now, for `seconds` (None: until `end_outage`). Returns once it holds:
        for `refuse` the port is closed (connections refused, open ones dropped); for `503`
        every request is answered 503. The data is kept."""
        self.faults.outages.begin(seconds, mode)
        await self.keeper.apply()

    async def end_outage(self) -> None:
        """End the outage under way now; returns once the port listens again."""
        self.faults.outages.end()
        await self.keeper.apply()

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
        store.checksums = config.checksums
        seconds = seed(store, config) if config.root else _seed_volatile(store, config)
        faults, log = Faults(config.faults), RequestLog()
        app = build_app(store, config, faults, log=log, persist=config.root is not None)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            listener = await _listen(runner, config, faults)
        except BaseException:
            await runner.cleanup()
            raise
        keeper = OutageKeeper(faults.outages, listener)
        faults.outages.restart()
        await keeper.apply()  # an outage from time 0 holds before anyone can connect
        watcher = asyncio.ensure_future(keeper.run())
        try:
            host, port = listener.address
            yield Emulator(
                f"http://{host}:{port}", host, port, config, store, faults, log,
                app[SESSIONS_KEY], app, seconds, keeper,
            )  # fmt: skip
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            keeper.close()
            await listener.stop()
            await runner.cleanup()
            if config.root:
                store.save()
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


async def _listen(runner: web.AppRunner, config: EmulatorConfig, faults: Faults) -> Listener:
    """Open the public port: the site itself, or a shaping proxy before a private site."""
    if faults.stream_rate is None:
        site = SiteListener(runner, config.host, config.port)
        await site.start()
        return site
    inner = web.TCPSite(runner, "127.0.0.1", 0)
    await inner.start()
    proxy = ShapingProxy(
        config.host, config.port, ("127.0.0.1", inner.port), lambda: faults.stream_rate
    )
    await proxy.start()
    return proxy


def _seed_volatile(store: Store, config: EmulatorConfig) -> float:
    seconds = seed(store, config)
    store.dirty = False
    (store.root / "metadata.json").unlink(missing_ok=True)
    return seconds
