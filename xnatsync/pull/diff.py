"""Merge-join of one owner's remote listing with its local state → one ``Change`` per key.

Inputs are two sequences sorted by key (Python ``str`` order, which is also SQLite's BINARY
order for UTF-8 text): remote ``RemoteFile``s as listed now, and ``LocalFile``s (the journal's
row plus what ``lstat`` says about DEST/relpath now). Nothing here does I/O.

Decision table for a key present on both sides (first match wins):

=====================================  ===========================================
local state / evidence                 kind
=====================================  ===========================================
journal ``deleted``                    NEW (fetch again; the row is reused)
journal ``pending``/``in_progress``/   RETRY
``failed``
content differs (``content_changed``)  CHANGED
file absent on disk                    MISSING
disk size or mtime_ns ≠ recorded       VERIFY (re-hash before deciding)
layout now puts it elsewhere           MOVED (rename; needs ``relpath_of``)
otherwise                              SAME
=====================================  ===========================================

Only remote → NEW; only local → ONLY_LOCAL (a delete candidate; deletions are planned once per
run, from the journal, never from one owner's diff). Several listing entries with one key (NFC
and NFD spellings of a name) → one CONFLICT change, which the planner reports as an error.

Invariants: every key of either input appears in exactly one change, in key order; no decision
compares the local clock with a server timestamp (only sizes and digests the server listed,
against the values we recorded when we downloaded).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from xnatsync.errors import UnsafePathError
from xnatsync.model import FileState, LocalFile, RemoteFile

_T = TypeVar("_T", RemoteFile, LocalFile)
_RETRY_STATES = frozenset({FileState.PENDING, FileState.IN_PROGRESS, FileState.FAILED})


class ChangeKind(enum.StrEnum):
    """What the diff found for one key."""

    NEW = "new"
    SAME = "same"
    CHANGED = "changed"
    MISSING = "missing"
    VERIFY = "verify"
    MOVED = "moved"
    RETRY = "retry"
    ONLY_LOCAL = "only_local"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Change:
    """One key's verdict. ``remote`` is None only for ONLY_LOCAL; ``local`` None only for NEW."""

    kind: ChangeKind
    remote: RemoteFile | None
    local: LocalFile | None

    @property
    def key(self) -> str:
        item = self.remote if self.remote is not None else self.local
        assert item is not None
        return item.key


RelpathOf = Callable[[RemoteFile], object]
"""Anything that maps a remote file to its relpath (``Layout.relpath``); str() is compared."""


def content_changed(remote: RemoteFile, local: LocalFile) -> bool:
    """True if the listed file differs from the one we recorded as downloaded.

    With a listed digest: it must equal our recorded MD5. Without one: the digest must still be
    absent as it was when we downloaded. A listed size (None when untrustworthy) must equal ours.
    """
    if remote.size is not None and remote.size != local.size:
        return True
    if remote.digest:
        return remote.digest != local.md5
    return local.remote_digest is not None


def classify(
    remote: RemoteFile, local: LocalFile, relpath_of: RelpathOf | None = None
) -> ChangeKind:
    """The kind for a key on both sides; see the module's decision table."""
    if local.state is FileState.DELETED:
        return ChangeKind.NEW
    if local.state in _RETRY_STATES:
        return ChangeKind.RETRY
    if content_changed(remote, local):
        return ChangeKind.CHANGED
    if local.disk_size is None:
        return ChangeKind.MISSING
    if local.disk_size != local.size or local.disk_mtime_ns != local.mtime_ns:
        return ChangeKind.VERIFY
    if relpath_of is not None and _placed_elsewhere(remote, local, relpath_of):
        return ChangeKind.MOVED
    return ChangeKind.SAME


def _placed_elsewhere(remote: RemoteFile, local: LocalFile, relpath_of: RelpathOf) -> bool:
    try:
        target = str(relpath_of(remote))
    except UnsafePathError:
        return False  # the planner reports it; a diff verdict needs no placement
    return target != local.relpath


def diff(
    remote: Iterable[RemoteFile],
    local: Iterable[LocalFile],
    relpath_of: RelpathOf | None = None,
) -> list[Change]:
    """Merge-join two key-sorted sequences; ``ValueError`` if either is out of order."""
    return list(iter_diff(remote, local, relpath_of))


def iter_diff(
    remote: Iterable[RemoteFile],
    local: Iterable[LocalFile],
    relpath_of: RelpathOf | None = None,
) -> Iterator[Change]:
    """Streaming form of ``diff``: memory is one group of equal keys, not the inputs."""
    rs = _grouped(remote, "remote")
    ls = _grouped(local, "local")
    r, l_ = next(rs, None), next(ls, None)
    while r is not None or l_ is not None:
        if l_ is None or (r is not None and r[0].key < l_[0].key):
            assert r is not None
            yield _remote_only(r)
            r = next(rs, None)
        elif r is None or l_[0].key < r[0].key:
            yield Change(ChangeKind.ONLY_LOCAL, None, l_[0])
            l_ = next(ls, None)
        else:
            yield _both(r, l_[0], relpath_of)
            r, l_ = next(rs, None), next(ls, None)


def _remote_only(group: Sequence[RemoteFile]) -> Change:
    kind = ChangeKind.CONFLICT if len(group) > 1 else ChangeKind.NEW
    return Change(kind, group[0], None)


def _both(group: Sequence[RemoteFile], local: LocalFile, relpath_of: RelpathOf | None) -> Change:
    if len(group) > 1:
        return Change(ChangeKind.CONFLICT, group[0], local)
    return Change(classify(group[0], local, relpath_of), group[0], local)


def _grouped(items: Iterable[_T], side: str) -> Iterator[list[_T]]:
    group: list[_T] = []
    for item in items:
        if group and item.key < group[0].key:
            raise ValueError(f"{side} input not sorted by key at {item.key!r}")
        if group and item.key != group[0].key:
            yield group
            group = []
        group.append(item)
    if group:
        yield group
