"""The emulator's public listener, and the keeper that closes it during a `refuse` outage.

A `Listener` opens and closes the public port: `SiteListener` is aiohttp's own TCP site,
`ShapingProxy` (in `pacing`) the per-connection bandwidth cap in front of it. Closing really
closes the listening socket (a client's connect is refused) and drops the open connections;
opening binds the same port again, so clients come back to the same URL and the same data.

`OutageKeeper` makes the listener follow `Faults.outages` (`costs.OutageSchedule`): `apply()`
brings it in line now (the programmatic `Emulator.outage()` awaits that), and `run()` does so at
every window edge (on the event loop's clock) and whenever the schedule changes. `reopened` is set
each time the port opens again after an outage, so tests wait for it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from aiohttp import web

from xnatsync.emulator.costs import OutageSchedule

RETRY = 0.5


class Listener(Protocol):
    """Something that opens and closes the public port."""

    port: int
    address: tuple[str, int]  # where it listens (host as bound, port)

    async def start(self) -> None:
        """Listen (again) on `port` (0 on the first start: any free port, then kept)."""

    async def stop(self) -> None:
        """Stop listening and drop the open connections."""


class SiteListener:
    """aiohttp's TCP site on (host, port), re-created on every start."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self.runner, self.host, self.port = runner, host, port
        self.address = (host, port)
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        """Bind and listen."""
        self._site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        self.port = self._site.port
        self.address = (str(self.runner.addresses[0][0]), self.port)

    async def stop(self) -> None:
        """Close the listening socket and every open connection."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self.runner.server
        for handler in server.connections if server is not None else []:
            handler.force_close()


class OutageKeeper:
    """Keeps `listener` closed exactly while the schedule says `refuse`."""

    def __init__(self, schedule: OutageSchedule, listener: Listener) -> None:
        self.schedule = schedule
        self.listener = listener
        self.listening = True
        self.reopened = asyncio.Event()
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        schedule.listeners.append(self._changed.set)

    async def apply(self) -> None:
        """Open or close the listener as the schedule says now."""
        async with self._lock:
            refuse = self.schedule.mode() == "refuse"
            if refuse and self.listening:
                await self.listener.stop()
                self.listening = False
                self.reopened.clear()
            elif not refuse and not self.listening:
                await self.listener.start()
                self.listening = True
                self.reopened.set()

    async def run(self) -> None:
        """Follow the schedule until cancelled (retrying every `RETRY` s while the port cannot be
        bound again, e.g. because another process took it meanwhile)."""
        while True:
            self._changed.clear()
            try:
                await self.apply()
                wait = self.schedule.next_change()
            except OSError:
                wait = RETRY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    def close(self) -> None:
        """Stop listening to the schedule."""
        with contextlib.suppress(ValueError):
            self.schedule.listeners.remove(self._changed.set)
