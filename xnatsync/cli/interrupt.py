"""Run one library coroutine from synchronous code until it ends or a signal stops it.

SIGINT and SIGTERM cancel the coroutine's scope, as Ctrl-C does: the library cleans up (temps
removed, journal flushed, the run recorded as interrupted) and the caller exits 130. The
library itself never installs signal handlers: a notebook or an orchestrator owns its signals.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from xnatsync.errors import first_error

T = TypeVar("T")

INTERRUPTED_MESSAGE = "xnatsync: interrupted; verified files stay done, rerun to finish"


def run_interruptible(fn: Callable[[], Awaitable[T]]) -> tuple[T | None, bool]:
    """``(result, False)`` when ``fn()`` finished, ``(None, True)`` when a signal stopped it;
    an error of ``fn()`` is raised as itself, not wrapped in a group."""
    return anyio.run(_main, fn)


async def _main(fn: Callable[[], Awaitable[T]]) -> tuple[T | None, bool]:
    interrupted = False
    result: T | None = None
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        interrupted = True
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch)
            try:
                result = await fn()
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return (None, True) if interrupted else (result, False)
