"""Cached search results: XNAT's "materialized views" of `POST /data/search?cache=true` (§6.1).

XNAT copies a search's rows into a table of their own when asked to cache, answers its name as
the envelope's `ID`, and serves it at `GET /data/search/{ID}`: a snapshot (rows added to the
archive later do not appear), owned by the user who made it. A table unused for an hour is
dropped. [XW SearchResource, CachedSearchResource; XNAT core MaterializedViewManager]

Rules kept here: an entry belongs to one user; it is found by its ID, or by (user, search ID)
for the bundle's `ID` attribute (newest first), which is how a stored search's results reuse a
cache; an entry idle past `idle` seconds is gone, and past `limit` entries the least recently
used is evicted, so a long-running emulator stays bounded. The clock is injected.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

CACHE_LIMIT = 256
IDLE_SECONDS = 3600.0


@dataclass(slots=True)
class CachedSearch:
    """One cached result table: its rows as they were when cached."""

    id: str
    owner: str
    search_id: str
    root: str
    columns: list[dict[str, str]]
    rows: list[dict[str, str]]
    last_access: float = field(default=0.0)


class SearchCache:
    """Bounded, per-user cache of search snapshots (least recently used evicted first)."""

    def __init__(
        self,
        limit: int = CACHE_LIMIT,
        idle: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.idle = idle
        self.clock = clock
        self._entries: OrderedDict[str, CachedSearch] = OrderedDict()
        self._serial = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        cutoff = self.clock() - self.idle
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.last_access >= cutoff:
                break
            self._entries.popitem(last=False)

    def put(
        self,
        owner: str,
        search_id: str,
        root: str,
        columns: list[dict[str, str]],
        rows: list[dict[str, str]],
    ) -> CachedSearch:
        """Cache a result table for `owner`; evicts the least recently used past `limit`."""
        self._expire()
        now = self.clock()
        entry = CachedSearch(
            f"xs{int(time.time() * 1000)}_{next(self._serial)}",
            owner,
            search_id,
            root,
            columns,
            [dict(r) for r in rows],
            now,
        )
        self._entries[entry.id] = entry
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)
        return entry

    def _touch(self, entry: CachedSearch) -> CachedSearch:
        entry.last_access = self.clock()
        self._entries.move_to_end(entry.id)
        return entry

    def get(self, cache_id: str) -> CachedSearch | None:
        """The entry called `cache_id` (any owner: the caller checks ownership), touched."""
        self._expire()
        entry = self._entries.get(cache_id)
        return self._touch(entry) if entry is not None else None

    def by_search(self, owner: str, search_id: str) -> CachedSearch | None:
        """The newest entry `owner` cached for the bundle `search_id`, touched."""
        self._expire()
        if not search_id:
            return None
        for entry in reversed(self._entries.values()):
            if entry.owner == owner and entry.search_id == search_id:
                return self._touch(entry)
        return None

    def drop(self, entry: CachedSearch) -> None:
        """Forget an entry (a stored search's results with `refresh=true`)."""
        self._entries.pop(entry.id, None)
