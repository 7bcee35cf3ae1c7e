"""The per-connection bandwidth cap (`stream=RATE`): one TCP stream is bounded by its window, not
by the link, so a loaded, distant XNAT gives each connection a rate of its own.

`Pacer` is the arithmetic (clock injected): every chunk is handed on only once the chunk itself
would have crossed a wire of `rate` bytes/s after the previous one, so N bytes take at least
N/rate seconds from the first byte on.

`ShapingProxy` applies it. With `stream=` in the SPEC when the emulator starts, the public port
is this proxy and aiohttp listens on a private loopback port behind it. Each accepted client
connection gets its own upstream connection and two pacers (request bytes, answer bytes), so
everything on the wire is paced — headers, listings, files (sendfile included), zips, uploads,
imports — and two connections never share a rate; keep-alive reuses one connection and its pacers.
The rate is read from `rate()` when a connection is accepted (None: pass through unpaced).
End-of-stream is passed on as a half close; a reset from either side is passed on as a reset
(SO_LINGER 0), so the `reset`/`drop` faults still reach the client as resets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable

_MAX_SLICE = 64 * 1024
_MIN_SLICE = 1024


class Pacer:
    """When bytes may be handed on, at `rate` bytes/s, on `clock` (seconds, monotonic)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a pacing rate must be positive")
        self.rate = rate
        self.clock = clock
        self._free_at = -1.0e300

    @property
    def slice(self) -> int:
        """The chunk size to pace by: ~20 ms of wire time, between 1 KiB and 64 KiB."""
        return int(min(_MAX_SLICE, max(_MIN_SLICE, self.rate / 50)))

    def reserve(self, size: int) -> float:
        """Book `size` bytes on the wire; seconds to wait until they have all crossed it."""
        now = self.clock()
        self._free_at = max(now, self._free_at) + size / self.rate
        return self._free_at - now


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pump(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, pacer: Pacer | None
) -> bool:
    """Copy until end of stream (True) or a broken connection (False)."""
    size = pacer.slice if pacer else _MAX_SLICE
    try:
        while chunk := await source.read(size):
            if pacer is not None:
                await asyncio.sleep(pacer.reserve(len(chunk)))
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()
        return True
    except (ConnectionError, OSError):
        return False


class ShapingProxy:
    """A listener on (host, port) forwarding each connection to `target`, paced per direction."""

    def __init__(
        self, host: str, port: int, target: tuple[str, int], rate: Callable[[], float | None]
    ) -> None:
        self.host, self.port, self.target, self.rate = host, port, target, rate
        self.address = (host, port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (on the port of the first start when that was 0)."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True
        )
        self.address = self._server.sockets[0].getsockname()[:2]
        self.port = self.address[1]

    async def stop(self) -> None:
        """Stop listening and reset every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            _reset(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        rate = self.rate()
        pacers = (Pacer(rate), Pacer(rate)) if rate else (None, None)
        self._open.update((writer, up_writer))
        try:
            down = asyncio.ensure_future(_pump(up_reader, writer, pacers[1]))
            up = asyncio.ensure_future(_pump(reader, up_writer, pacers[0]))
            for done in asyncio.as_completed((down, up)):
                if not await done:  # one side broke: break the other as XNAT's peer would see it
                    _reset(writer)
                    _reset(up_writer)
        finally:
            self._open.difference_update((writer, up_writer))
            for end in (writer, up_writer):
                end.close()
