"""The SQLite journal: what we downloaded, where, and in which state. One writer, batched commits.

The invariant (restic's "data before index"): a row says ``done`` only after the caller holds the
file verified (size and MD5) at its final name. The journal may under-report, never over-report:
a crash loses at most the unflushed batch, whose files are simply re-checked next run.

Durability: WAL + ``synchronous=NORMAL`` (consistent after any crash; a power loss may roll back
the last commits, which point one makes harmless). WAL's shared memory (the ``-shm`` file)
does not work over NFS, Lustre or GPFS: there a pull opens its journal ``exclusive`` (the WAL
index in the process's memory, the lock held for the run; ``mounts`` tells where it is).

Cost: ``mark_*`` calls append a tuple to a buffer (about a microsecond); ``flush`` writes the
buffer in one ``BEGIN IMMEDIATE … COMMIT``. It flushes by itself every ``batch_rows`` writes or
``batch_seconds`` (monotonic clock, checked on each write), and on ``flush()``/``close()``. Reads
flush first, so they see every earlier write. Not thread-safe: one thread at a time (the
connection allows another thread, so a caller may run a method in a worker thread if it
serialises calls).

States (``FileState``): a row is written ``in_progress`` when a transfer starts, then ``done`` or
``failed``; ``deleted`` after a planned delete. ``seen_run`` is the last run whose listing held
the key (rows written during a run carry that run); ``delete_candidates`` are ``done`` rows not
seen. Nothing secret is stored: ``last_error`` and the run command pass through ``redact``.

Owners: the ``owners`` table holds, per experiment/subject/project, the fingerprint of the listing
whose files were all verified, and the last run that found it unchanged (the no-op fast path of
``pull.listing``; such an owner's files count as seen without rewriting their rows). The schema, its
migrations and the batched statements live in ``journal_schema``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from xnatsync.errors import JournalError, UnsafePathError, XnatSyncError, redact
from xnatsync.journal_schema import (
    COLUMNS,
    WRITES,
    configure,
    journal_error,
    migrate,
    read_only_uri,
    require_current,
)
from xnatsync.model import FileState, LocalFile, RemoteFile
from xnatsync.paths import safe_relpath

_MAX_ERROR = 500
_DONE, _DELETED = FileState.DONE.value, FileState.DELETED.value
_SEEN_OPS = frozenset({"seen", "owner_seen"})
_KEY_FIRST = frozenset({"done", "in_progress", "failed"})  # ops whose params start with the key
_KEY_LAST = frozenset({"seen", "deleted", "corrupt"})  # … end with it
_OWNER_OPS = frozenset({"owner_seen", "fingerprint", "forget_owner"})  # the owners table only
_OWNER_SEEN = (
    "EXISTS (SELECT 1 FROM owners AS o WHERE o.project={t}.project AND o.owner={t}.owner"
    " AND o.seen_run=?)"
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal row as recorded (no disk evidence; ``LocalFile`` adds that)."""

    key: str
    project: str
    owner: str
    relpath: str
    size: int | None
    mtime_ns: int | None
    md5: str | None
    remote_digest: str | None
    state: FileState
    attempts: int


def stat_local(dest: Path, entry: Entry) -> LocalFile:
    """``entry`` plus one ``lstat`` of DEST/relpath; a symlink or non-file counts as absent.

    A ``failed`` row may hold the unsafe name a server listed (``../x``, NUL …); such a path is
    never looked up (it could point outside DEST) and counts as absent."""
    disk_size = disk_mtime = None
    try:
        # rows written done hold a relpath our layout produced and checked; others may hold a
        # name as the server listed it, which must never be looked up unchecked
        rel = entry.relpath if entry.state is FileState.DONE else safe_relpath(entry.relpath, "")
        st = os.lstat(os.path.join(dest, rel))
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        pass
    else:
        if stat.S_ISREG(st.st_mode):
            disk_size, disk_mtime = st.st_size, st.st_mtime_ns
    e = entry
    return LocalFile(
        e.key, e.relpath, e.size, e.mtime_ns, e.md5, e.remote_digest, e.state, disk_size, disk_mtime
    )


_ADOPT_COLUMNS = (
    "key, project, owner, relpath, size, mtime_ns, md5, remote_digest, state, updated_at"
)
_NEWER = "files.state NOT IN ('done', 'deleted') OR excluded.updated_at > files.updated_at"
_ADOPT = (
    f"INSERT INTO files ({_ADOPT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (key) DO"
    " UPDATE SET relpath=excluded.relpath, size=excluded.size, mtime_ns=excluded.mtime_ns,"
    " md5=excluded.md5, remote_digest=excluded.remote_digest, state=excluded.state,"
    f" last_error=NULL, updated_at=excluded.updated_at WHERE {_NEWER}"
)
_FORGET_ADOPTED = (
    "DELETE FROM owners WHERE (project, owner) IN (SELECT i.project, i.owner FROM"
    " temp.incoming AS i LEFT JOIN files AS f ON f.key = i.key WHERE f.key IS NULL"
    " OR f.state NOT IN ('done', 'deleted') OR i.updated_at > f.updated_at)"
)

JOURNAL = Path(".xnatsync") / "journal.db"
"""Where a destination's journal lives unless a run is told otherwise (relative to DEST)."""


class Journal:
    """The journal of one DEST. Open with ``Journal.open``; use as a context manager."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        batch_rows: int = 500,
        batch_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self.path = path
        self._batch_rows = batch_rows
        self._batch_seconds = batch_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._buffer: list[tuple[str, tuple[Any, ...]]] = []
        self._last_flush = monotonic()
        self.run_id: int | None = None
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        batch_rows: int = 500,
        batch_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        readonly: bool = False,
        exclusive: bool = False,
    ) -> Journal:
        """Open (creating parent directory and schema) and migrate; ``JournalError`` if unusable.

        ``clock`` stamps ``updated_at`` and runs (informational only, never compared);
        ``monotonic`` paces the time-based flush. ``readonly`` (``--dry-run``): an existing
        journal at the current schema, opened so that nothing can be written or migrated.
        """
        try:
            if readonly:
                target: str | Path = read_only_uri(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                target = path
            conn = sqlite3.connect(
                target, timeout=10.0, isolation_level=None, check_same_thread=False, uri=readonly
            )
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from exc
        try:
            if readonly:
                require_current(conn, path)
            else:
                configure(conn, path, exclusive=exclusive)
                migrate(conn, path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise journal_error(path, exc) from exc
        except JournalError:
            conn.close()
            raise
        return cls(
            conn, path, batch_rows=batch_rows, batch_seconds=batch_seconds, clock=clock,
            monotonic=monotonic,
        )  # fmt: skip

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._conn.close()

    # -- writes (buffered) ----------------------------------------------------------------------

    def _add(self, op: str, params: tuple[Any, ...]) -> None:
        self._buffer.append((op, params))
        if len(self._buffer) >= self._batch_rows or (
            self._monotonic() - self._last_flush >= self._batch_seconds
        ):
            self.flush()

    def mark_in_progress(self, remote: RemoteFile, relpath: str) -> None:
        """A transfer of ``remote`` to ``relpath`` starts (counts an attempt)."""
        row = (remote.key, remote.project, remote.owner, relpath, self._clock(), self.run_id)
        self._add("in_progress", row)

    def mark_done(
        self, remote: RemoteFile, relpath: str, size: int, mtime_ns: int, md5: str
    ) -> None:
        """``remote`` is verified at DEST/``relpath`` with this size, mtime and MD5."""
        self._add(
            "done",
            (
                remote.key, remote.project, remote.owner, relpath, size, mtime_ns, md5,
                remote.digest, self._clock(), self.run_id,
            ),
        )  # fmt: skip

    def mark_failed(self, remote: RemoteFile, reason: str, relpath: str = "") -> None:
        """This attempt failed; ``reason`` is redacted and truncated before it is stored."""
        text = redact(reason)[:_MAX_ERROR]
        row = (remote.key, remote.project, remote.owner, relpath, text, self._clock(), self.run_id)
        self._add("failed", row)

    def mark_deleted(self, key: str) -> None:
        """The file of ``key`` was removed (trashed or unlinked) as planned."""
        self._add("deleted", (self._clock(), key))

    def mark_corrupt(self, key: str, reason: str) -> None:
        """A ``done`` file no longer matches what was verified: the next pull fetches it."""
        self._add("corrupt", (redact(reason)[:_MAX_ERROR], self._clock(), key))

    def mark_seen(self, keys: Iterable[str], run_id: int) -> None:
        """These keys were in this run's listing (so they are not delete candidates)."""
        for key in keys:
            self._add("seen", (run_id, key))

    # -- owners: the no-op fast path ------------------------------------------------------------

    def set_fingerprint(self, project: str, owner: str, fingerprint: str) -> None:
        """Every file of this listing (``fingerprint``) is done: written after their rows."""
        self._add("fingerprint", (project, owner, fingerprint))

    def forget_fingerprint(self, project: str, owner: str) -> None:
        self._add("forget_owner", (project, owner))

    def fingerprint(self, project: str, owner: str) -> str | None:
        """The owner's recorded fingerprint. Only ``fingerprint`` and ``forget_owner`` writes
        change it, so a pending one answers from the buffer; otherwise the committed row is
        current, and the read needs no flush (during a first pull, a commit per owner)."""
        for op, params in reversed(self._buffer):
            if op == "fingerprint" and params[:2] == (project, owner):
                return str(params[2])
            if op == "forget_owner" and params == (project, owner):
                return None
        sql = "SELECT fingerprint FROM owners WHERE project=? AND owner=?"
        try:
            row = self._conn.execute(sql, (project, owner)).fetchone()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc}") from exc
        return None if row is None else str(row[0])

    def _flush_for_read(self) -> None:
        """Flush before a read unless only ``seen`` marks are pending (no read looks at them):
        a no-op run then commits once per batch, not once per owner."""
        if any(op not in _SEEN_OPS for op, _ in self._buffer):
            self.flush()

    def owner_rows(self, project: str, owner: str) -> list[tuple[str, int, int, str]] | None:
        """(relpath, size, mtime_ns, state) of this owner's rows, or None if one is neither
        ``done`` nor ``deleted`` (deleted rows, which left the listing earlier, are dropped)."""
        self._flush_for_read()
        sql = "SELECT relpath, size, mtime_ns, state FROM files WHERE project=? AND owner=?"
        try:
            rows = self._conn.execute(sql, (project, owner)).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc}") from exc
        if any(row[3] != _DONE and row[3] != _DELETED for row in rows):
            return None
        return [row for row in rows if row[3] == _DONE]

    def mark_owner_seen(self, project: str, owner: str, run_id: int) -> None:
        """Every row of this owner is in this run's listing (one row of ``owners``; the file
        rows are not rewritten, which keeps a no-op run's writes independent of file count)."""
        self._add("owner_seen", (run_id, project, owner))

    # -- --changed-only: cut-offs and the owners the journal knows ---------------------------

    def set_cutoff(
        self, project: str, shape: str, stamp: str, full_at: float, done_at: float
    ) -> None:
        """Record a complete run's cut-off (``pull.changes.Cutoff``'s fields)."""
        self._add("cutoff", (project, shape, stamp, full_at, done_at))

    def cutoff(self, project: str) -> tuple[str, str, float, float] | None:
        """(shape, stamp, full_at, done_at) of the project's last recorded cut-off, or None."""
        self._flush_for_read()
        sql = "SELECT shape, stamp, full_at, done_at FROM cutoffs WHERE project=?"
        rows = list(self._query(sql, (project,)))
        if not rows:
            return None
        shape, stamp, full_at, done_at = rows[0]
        return str(shape), str(stamp), float(full_at), float(done_at)

    def set_stamps(self, project: str, owner: str, stamps: str) -> None:
        """The owner's server dates as listed when its fingerprint was (or is being) recorded:
        written after ``set_fingerprint``, and gone with ``forget_fingerprint``."""
        self._add("stamps", (stamps, project, owner))

    def session_types(self, project: str | None = None) -> dict[str, str]:
        """Session label → XNAT type, as the server listed them when they were pulled (of
        ``project``, or of every project: a label two projects type differently is left out)."""
        self._flush_for_read()
        if project is not None:
            sql = "SELECT label, xsi_type FROM session_types WHERE project=?"
            return {str(label): str(kind) for label, kind in self._query(sql, (project,))}
        sql = ("SELECT label, min(xsi_type) FROM session_types GROUP BY label"
               " HAVING count(DISTINCT xsi_type) = 1")  # fmt: skip
        return {str(label): str(kind) for label, kind in self._query(sql)}

    def set_session_types(self, project: str, types: Mapping[str, str]) -> None:
        """Record the sessions' types whose record is missing or differs (a no-op run writes
        nothing)."""
        known = self.session_types(project)
        for label, kind in sorted(types.items()):
            if kind and known.get(label) != kind:
                self._add("session_type", (project, label, kind))

    def owner_stamps(self, project: str) -> dict[str, str]:
        """Owner → the server dates recorded when it was last mirrored whole."""
        self._flush_for_read()
        sql = "SELECT owner, stamps FROM owners WHERE project=? AND stamps IS NOT NULL"
        return {str(owner): str(stamps) for owner, stamps in self._query(sql, (project,))}

    def flush(self) -> None:
        """Commit the buffer in one transaction (consecutive same-kind writes as executemany)."""
        self._last_flush = self._monotonic()
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            start = 0
            for i in range(1, len(batch) + 1):
                if i == len(batch) or batch[i][0] != batch[start][0]:
                    sql = WRITES[batch[start][0]]
                    self._conn.executemany(sql, [params for _, params in batch[start:i]])
                    start = i
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise JournalError(f"cannot write journal {self.path}: {exc}") from exc

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    # -- rows another journal of this DEST holds (a shard's) ----------------------------------

    def adopt(self, source: Path, owns: Callable[[str, str], bool]) -> int:
        """Copy from ``source`` (another journal of this DEST: another shard count's, or the
        unsharded one) the ``done`` and ``deleted`` rows of the owners ``owns(project, owner)``
        accepts, where
        ours has no row for the key, or one neither done nor deleted, or an older one; return
        how many rows changed. The newest word on a file wins, so a shard that re-fetched a
        file, or a ``--delete-only`` run that removed one, is heard by the others.

        As safe as the row copied: ``done`` means verified at ``relpath`` with this size, mtime
        and MD5, and the diff still compares those with the disk and the listing. A copied row
        is not seen by this run (no ``seen_run``), and its owner's fingerprint is forgotten (the
        no-op fast path must look at its files once). ``source`` is opened read-only."""
        self.flush()
        try:
            src = sqlite3.connect(read_only_uri(source), uri=True, timeout=10.0)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read journal {source}: {exc}") from exc
        changed = 0
        try:
            require_current(src, source)
            sql = f"SELECT {_ADOPT_COLUMNS} FROM files WHERE state IN ('done', 'deleted')"
            rows = src.execute(sql)
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                if owns(row[1], row[2]):
                    batch.append(row)
                if len(batch) >= self._batch_rows:
                    changed += self._adopt_rows(batch)
                    batch = []
            changed += self._adopt_rows(batch)
        except sqlite3.Error as exc:
            self._rollback()
            raise JournalError(f"cannot adopt the rows of journal {source}: {exc}") from exc
        finally:
            src.close()
        return changed

    def _adopt_rows(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS incoming ({_ADOPT_COLUMNS})")
        self._conn.execute("DELETE FROM temp.incoming")
        marks = ",".join("?" * len(rows[0]))
        self._conn.executemany(f"INSERT INTO temp.incoming VALUES ({marks})", rows)
        self._conn.execute(_FORGET_ADOPTED)
        self._conn.execute("DELETE FROM temp.incoming")
        forgotten = self._conn.total_changes
        self._conn.executemany(_ADOPT, rows)
        self._conn.execute("COMMIT")
        return self._conn.total_changes - forgotten

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        """Record a run start; rows written from now on carry its id as ``seen_run``."""
        self.flush()
        cur = self._write(
            "INSERT INTO runs (started, command, status) VALUES (?, ?, 'running')",
            (self._clock(), redact(command)),
        )
        assert cur.lastrowid is not None
        self.run_id = cur.lastrowid
        return self.run_id

    def finish_run(self, run_id: int, status: str, counts: Mapping[str, int]) -> None:
        """Flush, then record the run's end, status and counts."""
        self.flush()
        sql = "UPDATE runs SET finished=?, status=?, counts=? WHERE id=?"
        self._write(sql, (self._clock(), status, json.dumps(dict(counts)), run_id))

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc}") from exc

    # -- reads (flush first) ------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        self.flush()
        try:
            yield from self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc}") from exc

    def entries(self, project: str, owner: str) -> list[Entry]:
        """The rows of one owner (experiment, subject, or "" for the project), sorted by key.

        Flushes first only if a pending write may touch this owner's rows: while files of
        other owners are being written, listing the next owner costs no commit."""
        if self._pending_for(f"{project}/{owner}/"):
            self.flush()
        sql = f"SELECT {COLUMNS} FROM files WHERE project=? AND owner=? ORDER BY key"
        try:
            return [_entry(row) for row in self._conn.execute(sql, (project, owner))]
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc}") from exc

    def _pending_for(self, prefix: str) -> bool:
        """Whether a buffered write may change a row whose key starts with ``prefix`` (keys
        begin ``project/owner/``); writes of a kind not known here count as touching it."""
        for op, params in self._buffer:
            if op in _KEY_FIRST:
                key = params[0]
            elif op in _KEY_LAST:
                key = params[-1]
            elif op in _OWNER_OPS:
                continue  # the owners table: entries does not read it
            else:
                return True
            if isinstance(key, str) and key.startswith(prefix):
                return True
        return False

    def entries_for_owner(self, project: str, owner: str, dest: Path) -> list[LocalFile]:
        """``entries`` plus one ``lstat`` each under ``dest``: the diff's local side."""
        return [stat_local(dest, e) for e in self.entries(project, owner)]

    def delete_candidates(self, projects: Iterable[str], run_id: int) -> Iterator[Entry]:
        """``done`` rows of ``projects`` not seen in ``run_id``, sorted by key; a row whose
        relpath a row seen in this run now holds (re-created object) is not a candidate."""
        for project in sorted(set(projects)):
            sql = (
                f"SELECT {COLUMNS} FROM files AS f WHERE project=? AND state='done'"
                f" AND seen_run IS NOT ? AND NOT {_OWNER_SEEN.format(t='f')}"
                " AND NOT EXISTS (SELECT 1 FROM files AS g WHERE g.relpath=f.relpath"
                f" AND g.key!=f.key AND (g.seen_run=? OR {_OWNER_SEEN.format(t='g')}))"
                " ORDER BY key"
            )
            params = (project, run_id, run_id, run_id, run_id)
            yield from (_entry(row) for row in self._query(sql, params))

    def count(self, projects: Iterable[str], state: FileState = FileState.DONE) -> int:
        """Rows in ``state`` for ``projects`` (the ``total_local`` of the delete cap)."""
        wanted = sorted(set(projects))
        marks = ",".join("?" * len(wanted))
        sql = f"SELECT count(*) FROM files WHERE state=? AND project IN ({marks})"
        return int(next(self._query(sql, (state.value, *wanted)))[0])

    def iter_done(self, project: str | None = None) -> Iterator[Entry]:
        """Every ``done`` row (of ``project`` if given), sorted by key: ``xnatsync verify``."""
        where = "state='done'" + (" AND project=?" if project is not None else "")
        sql = f"SELECT {COLUMNS} FROM files WHERE {where} ORDER BY key"
        yield from (_entry(r) for r in self._query(sql, (project,) if project else ()))

    def summary(self) -> dict[str, Any]:
        """For ``xnatsync status``: rows and bytes per state, recent failures, the last run."""
        states = {s.value: {"files": 0, "bytes": 0} for s in FileState}
        sql = "SELECT state, count(*), coalesce(sum(size), 0) FROM files GROUP BY state"
        for state, n, total in self._query(sql):
            states[state] = {"files": n, "bytes": total}
        failures = [
            {"key": k, "error": e}
            for k, e in self._query(
                "SELECT key, last_error FROM files WHERE state='failed' ORDER BY key LIMIT 20"
            )
        ]
        return {"states": states, "failures": failures, "last_run": self.last_run()}

    def last_run(self) -> dict[str, Any] | None:
        """The newest run (``status`` "running" if it never finished: it was killed)."""
        last = list(self._query("SELECT * FROM runs ORDER BY id DESC LIMIT 1"))
        return _run(last[0]) if last else None


def _entry(row: tuple[Any, ...]) -> Entry:
    key, project, owner, relpath, size, mtime_ns, md5, digest, state, attempts = row
    return Entry(
        key, project, owner, relpath, size, mtime_ns, md5, digest, FileState(state), attempts
    )


def _run(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, started, finished, command, status, counts = row
    return {
        "id": run_id,
        "started": started,
        "finished": finished,
        "command": command,
        "status": status,
        "counts": json.loads(counts),
    }


class Counts(Protocol):
    """What a run's record needs of its totals (``report.Summary``)."""

    @property
    def ok(self) -> bool: ...

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...


@contextmanager
def recorded_run(journal: Journal, command: str, counts: Counts) -> Iterator[int]:
    """``with recorded_run(journal, "pull …", summary) as run_id:`` — the run's row: "ok" or
    "failed" by its totals when the block ends, "error" on a fatal error, "interrupted" when
    cancelled; the totals are closed and stored either way."""
    run_id = journal.start_run(command)
    status = "interrupted"
    try:
        yield run_id
        status = "ok" if counts.ok else "failed"
    except XnatSyncError:
        status = "error"
        raise
    finally:
        counts.close()
        journal.finish_run(run_id, status, counts.counts())
