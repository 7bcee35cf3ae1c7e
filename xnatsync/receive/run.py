"""The receiver on an event loop: ``receiving`` (an async context manager) and ``receive``.

pynetdicom serves in its own threads; the loop only starts and stops it, each in a worker
thread (binding and the stop's wait are blocking). Leaving the context, cancellation included,
stops the receiver (shielded: a cancelled daemon still lets the stores being written finish).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from xnatsync.receive.options import ReceiveOptions
from xnatsync.receive.scp import LOG, Receiver
from xnatsync.receive.spool import Spool


@asynccontextmanager
async def receiving(
    options: ReceiveOptions, *, spool: Spool | None = None, log: logging.Logger = LOG
) -> AsyncIterator[Receiver]:
    """Serve C-STORE into ``options.spool`` while the context lasts; yields the started
    ``Receiver`` (its ``address`` is the bound host and port)."""
    receiver = Receiver(options, spool=spool, log=log)
    await anyio.to_thread.run_sync(receiver.start)
    try:
        yield receiver
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(receiver.stop)


async def receive(options: ReceiveOptions) -> None:
    """Receive until cancelled (``xnatsync receive``: until SIGTERM or SIGINT)."""
    async with receiving(options):
        await anyio.sleep_forever()
