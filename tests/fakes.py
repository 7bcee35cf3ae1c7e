"""Small hand-written fakes shared by several test modules."""

from __future__ import annotations

import anyio.lowlevel


class FakeTime:
    """A clock that only moves when the code under test sleeps; it records every sleep."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()
