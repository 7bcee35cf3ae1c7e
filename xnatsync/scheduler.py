"""Runs any plan's actions: one task group, N workers, a bounded queue, one attempts loop.

The engine does not know what an action is. A front-end hands ``Scheduler`` a ``Runner`` (pull's
``execute.Executor`` runs downloads, zips, verifies, moves and deletes; push and import bring
their own) and submits actions; the scheduler owns the workers that call ``runner.run``.

* ``submit`` blocks while the queue is full, which paces the listing stage to the transfers:
  memory stays bounded by the queue, not by the archive.
* A runner records per-file failures itself (journal row, event) and returns; an exception out
  of ``runner.run`` is fatal (auth lost, disk full, journal unwritable) and cancels every worker.
* ``Attempts`` is the one loop every transfer attempt goes through: a transfer slot per attempt
  (``Throttle``: fewer at once after a 429), progress events, and the retry policy's pauses
  (``retrying``, the loop the XNAT client's requests use too).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Protocol, TypeVar

import anyio
import anyio.abc

from xnatsync.errors import TransientRemoteError, XnatSyncError, first_error
from xnatsync.events import FileProgress, FileRetry, FileStarted, Notice, Reporter
from xnatsync.limits import Limits
from xnatsync.retry import RetryPolicy
from xnatsync.retrying import retrying

A = TypeVar("A")
A_contra = TypeVar("A_contra", contravariant=True)
T = TypeVar("T")


class Runner(Protocol[A_contra]):
    """Carries out one action; records its per-file outcome; raises only what is fatal."""

    async def run(self, action: A_contra) -> None: ...


class Throttle:
    """How many transfers may run at once: halved on each 429, and raised by one again after
    as many successes as the current limit, up to the configured ``ceiling`` (additive
    increase, multiplicative decrease, as TCP does). The server is never hammered twice."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.slots = anyio.CapacityLimiter(ceiling)
        self._successes = 0

    @property
    def limit(self) -> int:
        return int(self.slots.total_tokens)

    def throttled(self) -> int:
        self.slots.total_tokens = max(1, self.limit // 2)
        self._successes = 0
        return self.limit

    def succeeded(self) -> int:
        if self.limit < self.ceiling:
            self._successes += 1
            if self._successes >= self.limit:
                self.slots.total_tokens = self.limit + 1
                self._successes = 0
        return self.limit


@dataclass
class Attempts:
    """The attempts loop of every transfer, whatever its direction.

    ``run(key, label, size, call)`` awaits ``call(progress)`` under a transfer slot, reporting
    ``FileStarted``/``FileProgress`` (a failed attempt's bytes are taken back with a restart)
    and, between attempts, ``FileRetry``; pauses follow the retry policy."""

    reporter: Reporter
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    throttle: Throttle = field(default_factory=lambda: Throttle(Limits().transfers))
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    rand: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic

    async def run(
        self,
        key: str,
        label: str,
        size: int | None,
        call: Callable[[Callable[[int], None]], Awaitable[T]],
    ) -> T:
        async def attempt(number: int) -> T:
            self.reporter.emit(FileStarted(key, label, size, number))
            received = 0

            def progress(n: int) -> None:
                nonlocal received
                received += n
                self.reporter.emit(FileProgress(key, n))

            try:
                async with self.throttle.slots:
                    result = await call(progress)
            except XnatSyncError as exc:
                if received:
                    self.reporter.emit(FileProgress(key, received, restart=True))
                if isinstance(exc, TransientRemoteError) and exc.status == 429:
                    self._slow_down()
                raise
            self.throttle.succeeded()
            return result

        def retried(number: int, exc: XnatSyncError, delay: float) -> None:
            self.reporter.emit(FileRetry(key, label, number, delay, str(exc)))

        return await retrying(
            self.retry, attempt, sleep=self.sleep, rand=self.rand, clock=self.clock,
            on_retry=retried,
        )  # fmt: skip

    def _slow_down(self) -> None:
        before = self.throttle.limit
        if self.throttle.throttled() < before:
            message = f"the server asked to slow down (429): at most {self.throttle.limit} "
            self.reporter.emit(Notice(message + "transfers at once for now"))


class Scheduler(Generic[A]):
    """Owns the workers. ``async with Scheduler(runner, limits) as s: await s.submit(actions)``."""

    def __init__(self, runner: Runner[A], limits: Limits) -> None:
        self._runner = runner
        self._workers = limits.transfers
        send, recv = anyio.create_memory_object_stream[A](limits.transfers * 4)
        self._send, self._recv = send, recv
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Scheduler[A]:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        for _ in range(self._workers):
            self._tg.start_soon(self._worker, self._recv.clone())
        self._recv.close()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._send.close()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            raise first_error(group) from None

    async def submit(self, actions: Iterable[A]) -> None:
        """Queue ``actions``, waiting while the queue is full."""
        for action in actions:
            await self._send.send(action)

    async def _worker(self, recv: anyio.abc.ObjectReceiveStream[A]) -> None:
        async with recv:
            async for action in recv:
                await self._runner.run(action)
