"""The emulator's request log: every answered request, in completion order, for tests and
benchmarks to count what a client sent (bounded: the oldest half goes once it is full)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered request as the log keeps it."""

    method: str
    path: str
    query: str
    status: int
    user: str
    fault: str


LOG_LIMIT = 200_000


@dataclass(slots=True)
class RequestLog:
    """The requests the emulator answered, in completion order (at most `LOG_LIMIT`)."""

    records: list[RequestRecord] = field(default_factory=list)

    def add(self, record: RequestRecord) -> None:
        """Append one record (dropping the oldest half once `LOG_LIMIT` is reached)."""
        if len(self.records) >= LOG_LIMIT:
            del self.records[: LOG_LIMIT // 2]
        self.records.append(record)

    def matching(self, method: str = "*", glob: str = "*") -> list[RequestRecord]:
        """Records whose method (or `*`) and path glob match."""
        return [
            r
            for r in self.records
            if method in ("*", r.method) and fnmatch.fnmatchcase(r.path, glob)
        ]

    def count(self, method: str = "*", glob: str = "*") -> int:
        """How many records match."""
        return len(self.matching(method, glob))

    def clear(self) -> None:
        """Forget everything logged so far."""
        self.records.clear()
