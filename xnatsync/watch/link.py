"""The daemon's connection to XNAT, for months: logged in when first needed, logged in again
when the server comes back, and whether the server is reachable (and since when).

What the client already does, and is relied on: one login (``POST /data/JSESSION``), the
session cookie afterwards, and on a 401 or a redirect to the login page (XNAT's idle timeout,
15 minutes by default, or a server restart) one single-flight re-login with the credentials it
keeps. What this adds: a client whose re-login failed because the server was away (its
authenticator is then poisoned with an ``AuthError`` caused by a transport error) is closed and
a fresh one logs in on the next send, with the credentials the old one hands over (an alias
token it renewed, so a daemon logged in with a token outlives it across outages); a client
that cannot log in because the server is down
raises ``UnreachableError`` and the study waits. A login the server *refuses* (HTTP 401: a
wrong or expired password or token) is never retried in a loop — XNAT locks accounts after
repeated failures — it stops the daemon (exit 3).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

import anyio

from xnatsync.errors import AuthError, UnreachableError, XnatSyncError
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient


def server_away(exc: BaseException) -> bool:
    """The error says the server did not answer usefully, not that it refused us."""
    if isinstance(exc, UnreachableError):
        return True
    if isinstance(exc, AuthError):  # a re-login that failed because the server was down
        cause = exc.__cause__
        return isinstance(cause, XnatSyncError) and (cause.retryable or server_away(cause))
    return isinstance(exc, XnatSyncError) and exc.retryable


class Link:
    """One open client at a time, made by ``make`` (no I/O until ``client`` is awaited)."""

    def __init__(
        self, make: Callable[[Credentials | None], XnatClient], clock: Callable[[], float]
    ) -> None:
        self._make = make
        self._credentials: Credentials | None = None  # handed over by the last client
        self._clock = clock
        self._lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        self._client: XnatClient | None = None
        self.reachable_since: float | None = None
        self.unreachable_since: float | None = None

    async def client(self) -> XnatClient:
        """The open client, logging in first if there is none (``UnreachableError`` while the
        server is down; ``AuthError`` if it refuses the credentials)."""
        async with self._lock:
            if self._client is None:
                stack = AsyncExitStack()
                try:
                    self._client = await stack.enter_async_context(self._make(self._credentials))
                except UnreachableError:
                    self.down()
                    raise
                self._stack = stack
            return self._client

    def up(self) -> None:
        """A request succeeded."""
        if self.reachable_since is None:
            self.reachable_since = self._clock()
        self.unreachable_since = None

    def down(self) -> None:
        """The server did not answer."""
        if self.unreachable_since is None:
            self.unreachable_since = self._clock()
        self.reachable_since = None

    async def reset(self) -> None:
        """Close the client (its session is useless); the next ``client`` logs in afresh."""
        async with self._lock:
            await self._close()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._close()

    async def _close(self) -> None:
        if self._client is not None:  # a token it renewed is what the next one logs in with
            self._credentials = self._client.hand_over()
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()
