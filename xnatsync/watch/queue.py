"""The daemon's durable queue (SQLite, ``STATE/queue.db``): every file seen in the spool and
every study, with its state. A restart resumes from here; nothing is kept only in memory.

File states, in the order a file travels::

    unstable ─► stable ─► instance ─► sent ─► kept | deleted | moved
        ▲          │  └─► quarantined | ignored
        └──────────┘ (changed again)

* ``unstable``: seen, size and mtime of the last look recorded; not read yet.
* ``stable``: settled and handed to a header reader (back to ``unstable`` on restart).
* ``instance``: its header is read; its study will send it.
* ``sent``: its study was sent and checked; the after-upload action is still to do.
* ``kept``/``deleted``/``moved``: done with. A kept file that changes is seen again.
* ``quarantined`` (not DICOM, unparseable, refused by XNAT's rules) or ``ignored`` (a duplicate
  of an instance already in its study, a symlink): never sent.
* Rows of files gone from the spool (``deleted``, ``moved``, ``quarantined``) are forgotten
  ``HISTORY`` (30 days) after their last change (``prune``), so the queue follows what the
  spool holds, not all it ever held.

Study states: ``pending`` (waiting for its quiet period or its next try) → ``sending`` →
``done`` (every instance archived, checked) or back to ``pending`` (with ``attempts``,
``last_error`` and ``next_try``) or ``failed`` (an error trying again will not cure). A new
instance makes a ``done`` or ``failed`` study ``pending`` again. ``sending`` becomes
``pending`` on restart: the next attempt looks at the archive first, so nothing is sent twice.

Invariants: the subject and session labels of a study are fixed the first time it is sent (a
late series goes into the same session); no two studies hold the same session label (ignoring
case). Every method commits before it returns (WAL, ``synchronous=NORMAL``); the queue lives on
a local disk. One thread at a time (a lock serialises the methods).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from xnatsync.dicom.instance import TAGS, Instance
from xnatsync.errors import JournalError, redact

QUEUE = "queue.db"
_MAX_ERROR = 500
_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    looked_at REAL NOT NULL,
    state TEXT NOT NULL,
    study_uid TEXT,
    header TEXT,
    reason TEXT,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_state ON files (state, looked_at);
CREATE INDEX IF NOT EXISTS files_study ON files (study_uid, state);
CREATE TABLE IF NOT EXISTS studies (
    uid TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    subject TEXT,
    session TEXT,
    session_key TEXT UNIQUE,
    pending_since REAL,
    last_instance_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at REAL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS studies_state ON studies (state, last_instance_at);
"""
STUDY_STATES = ("pending", "sending", "done", "failed")
FILE_STATES = ("unstable", "stable", "instance", "sent", "kept", "deleted", "moved",
               "quarantined", "ignored")  # fmt: skip
SENT = ("instance", "sent", "kept", "deleted", "moved")  # rows an archived study may hold
ACTIVE = ("unstable", "stable", "instance", "sent", "quarantined", "ignored")  # counted
HISTORY = 30 * 86400.0  # rows of files gone from the spool are kept this long


@dataclass(frozen=True, slots=True)
class Seen:
    """A file row as a look needs it."""

    path: Path
    size: int
    mtime_ns: int
    looked_at: float
    state: str


@dataclass(frozen=True, slots=True)
class StudyRow:
    uid: str
    state: str
    subject: str | None
    session: str | None
    attempts: int
    last_error: str | None


class Queue:
    """The queue of one spool. ``Queue.open(path)``; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Queue:
        try:
            if readonly:
                conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                       isolation_level=None, check_same_thread=False)  # fmt: skip
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=10.0, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version > _VERSION:
                    conn.close()
                    raise JournalError(f"queue {path} is newer than this xnatsync; upgrade")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the watch queue {path}: {exc}") from exc
        return cls(conn, path)

    def __enter__(self) -> Queue:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; any SQLite error is a (fatal) ``JournalError``."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise JournalError(f"cannot write the watch queue {self.path}: {exc}") from exc

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read the watch queue {self.path}: {exc}") from exc

    # -- start -------------------------------------------------------------------------------

    def recover(self, now: float) -> None:
        """After a stop or a crash: studies being sent wait again, files handed to a reader are
        looked at again."""
        with self._tx() as db:
            db.execute("UPDATE studies SET state='pending', updated_at=? WHERE state='sending'",
                       (now,))  # fmt: skip
            db.execute("UPDATE files SET state='unstable', updated_at=? WHERE state='stable'",
                       (now,))  # fmt: skip

    # -- files -------------------------------------------------------------------------------

    def observe(self, looks: Iterable[tuple[Path, int, int]], now: float) -> int:
        """Files seen (path, size, mtime): new ones, and changed ones (in any state: a file
        rewritten, or a new one where a sent one was deleted, is read again), become
        ``unstable`` with this look. Returns how many did."""
        sql = (
            "INSERT INTO files (path, size, mtime_ns, looked_at, state, updated_at)"
            " VALUES (?,?,?,?,'unstable',?) ON CONFLICT (path) DO UPDATE SET"
            " size=excluded.size, mtime_ns=excluded.mtime_ns, looked_at=excluded.looked_at,"
            " state='unstable', updated_at=excluded.updated_at"
            " WHERE files.size!=excluded.size OR files.mtime_ns!=excluded.mtime_ns"
        )
        with self._tx() as db:
            before = db.total_changes
            db.executemany(sql, [(str(p), s, m, now, now) for p, s, m in looks])
            return db.total_changes - before

    def forget(self, path: Path) -> None:
        """The file is gone from the spool before it was sent: drop its row."""
        with self._tx() as db:
            db.execute("DELETE FROM files WHERE path=? AND state IN ('unstable', 'stable',"
                       " 'instance', 'quarantined', 'ignored')", (str(path),))  # fmt: skip

    def unsettled(self, looked_before: float, limit: int) -> list[Seen]:
        """``unstable`` files last looked at before ``looked_before``, oldest look first."""
        rows = self._read(
            "SELECT path, size, mtime_ns, looked_at, state FROM files WHERE state='unstable'"
            " AND looked_at<=? ORDER BY looked_at LIMIT ?",
            (looked_before, limit),
        )
        return [Seen(Path(p), s, m, at, st) for p, s, m, at, st in rows]

    def relook(self, looks: Iterable[tuple[Path, int, int]], now: float) -> None:
        """Still changing: record the new size and mtime."""
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET size=?, mtime_ns=?, looked_at=?, updated_at=? WHERE path=?"
                " AND state='unstable'",
                [(s, m, now, now, str(p)) for p, s, m in looks],
            )

    def set_files(self, paths: Iterable[Path], state: str, now: float, reason: str = "") -> None:
        """Files move to ``state`` (``reason`` kept for quarantined and ignored ones)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET state=?, reason=?, updated_at=? WHERE path=?",
                [(state, redact(reason)[:_MAX_ERROR] or None, now, str(p)) for p in paths],
            )

    def record_instance(self, instance: Instance, now: float) -> None:
        """A header was read: the file is an instance of its study, which waits ``quiet``
        seconds from now (a ``done`` or ``failed`` study is pending again: it grew)."""
        header = {attr: getattr(instance, attr) for attr in TAGS.values() if
                  getattr(instance, attr)} | {"part10": instance.part10}  # fmt: skip
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state='instance', size=?, mtime_ns=?, study_uid=?, header=?,"
                " reason=NULL, updated_at=? WHERE path=?",
                (instance.size, instance.mtime_ns, instance.study_uid, json.dumps(header), now,
                 str(instance.path)),
            )  # fmt: skip
            db.execute(
                "INSERT INTO studies (uid, state, pending_since, last_instance_at, updated_at)"
                " VALUES (?, 'pending', ?, ?, ?) ON CONFLICT (uid) DO UPDATE SET"
                " last_instance_at=excluded.last_instance_at, updated_at=excluded.updated_at,"
                " pending_since=CASE WHEN state IN ('done', 'failed') THEN excluded.pending_since"
                " ELSE pending_since END,"
                " attempts=CASE WHEN state IN ('done', 'failed') THEN 0 ELSE attempts END,"
                " next_try=CASE WHEN state IN ('done', 'failed') THEN 0 ELSE next_try END,"
                " state=CASE WHEN state='sending' THEN 'sending' ELSE 'pending' END",
                (instance.study_uid, now, now, now),
            )

    def instances_of(self, uid: str) -> list[tuple[Instance, str]]:
        """Every instance of the study the queue knows (as read), with its file state."""
        marks = ",".join("?" * len(SENT))
        rows = self._read(
            f"SELECT path, size, mtime_ns, header, state FROM files WHERE study_uid=?"
            f" AND state IN ({marks})",
            (uid, *SENT),
        )
        out = []
        for path, size, mtime_ns, header, state in rows:
            fields = json.loads(header)
            part10 = bool(fields.pop("part10", True))
            out.append((Instance(Path(path), size, mtime_ns, part10, **fields), state))
        return out

    def files_in(self, state: str, limit: int | None) -> list[Path]:
        """Paths of files in ``state`` (at most ``limit``; None: all, for a state that is
        short-lived, such as ``sent``)."""
        rows = self._read("SELECT path FROM files WHERE state=? LIMIT ?", (state, limit or -1))
        return [Path(p) for (p,) in rows]

    def known(self, path: Path) -> Seen | None:
        rows = self._read("SELECT path, size, mtime_ns, looked_at, state FROM files WHERE path=?",
                          (str(path),))  # fmt: skip
        return Seen(Path(rows[0][0]), *rows[0][1:]) if rows else None

    # -- studies -----------------------------------------------------------------------------

    def ready(self, quiet: float, now: float, limit: int) -> list[str]:
        """Pending studies complete (``quiet`` seconds without a new instance) and due."""
        rows = self._read(
            "SELECT uid FROM studies WHERE state='pending' AND last_instance_at<=? AND"
            " next_try<=? ORDER BY last_instance_at LIMIT ?",
            (now - quiet, now, limit),
        )
        return [uid for (uid,) in rows]

    def study(self, uid: str) -> StudyRow | None:
        rows = self._read("SELECT uid, state, subject, session, attempts, last_error FROM"
                          " studies WHERE uid=?", (uid,))  # fmt: skip
        return StudyRow(*rows[0]) if rows else None

    def begin(self, uid: str, now: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE studies SET state='sending', updated_at=? WHERE uid=?", (now, uid))

    def label(self, uid: str, subject: str, session: str) -> str:
        """Fix the study's labels the first time it is sent; a session label another study
        holds gets the smallest free ``_n`` suffix. Returns the session label kept."""
        with self._tx() as db:
            n, label = 1, session
            while db.execute("SELECT 1 FROM studies WHERE session_key=? AND uid!=?",
                             (label.casefold(), uid)).fetchone():  # fmt: skip
                n += 1
                label = f"{session}_{n}"
            db.execute("UPDATE studies SET subject=?, session=?, session_key=? WHERE uid=?",
                       (subject, label, label.casefold(), uid))  # fmt: skip
            return label

    def finish(self, uid: str, sent: Iterable[Path], now: float) -> str:
        """The study was sent and checked: its sent files are ``sent``; it is ``done`` unless
        an instance arrived meanwhile (then ``pending`` again). Returns the new state."""
        with self._tx() as db:
            db.executemany("UPDATE files SET state='sent', updated_at=? WHERE path=? AND"
                           " state='instance'", [(now, str(p)) for p in sent])  # fmt: skip
            waiting = db.execute("SELECT 1 FROM files WHERE study_uid=? AND state='instance'"
                                 " LIMIT 1", (uid,)).fetchone()  # fmt: skip
            state = "pending" if waiting else "done"
            db.execute(
                "UPDATE studies SET state=?, attempts=0, next_try=0, last_error=NULL,"
                " done_at=?, updated_at=?, pending_since=CASE WHEN ?='pending' THEN ? ELSE"
                " NULL END WHERE uid=?",
                (state, now, now, state, now, uid),
            )
            return state

    def wait(self, uid: str, now: float) -> None:
        """Back to ``pending`` without counting a failure (some files must be read again)."""
        with self._tx() as db:
            db.execute("UPDATE studies SET state='pending', updated_at=? WHERE uid=?", (now, uid))

    def retry_later(self, uid: str, error: str, next_try: float, now: float) -> int:
        """The attempt failed in a way a later one may cure. Returns the failures so far."""
        with self._tx() as db:
            db.execute("UPDATE studies SET state='pending', attempts=attempts+1, last_error=?,"
                       " next_try=?, updated_at=? WHERE uid=?",
                       (redact(error)[:_MAX_ERROR], next_try, now, uid))  # fmt: skip
            row = db.execute("SELECT attempts FROM studies WHERE uid=?", (uid,)).fetchone()
            return int(row[0]) if row else 0

    def fail(self, uid: str, error: str, now: float) -> None:
        """Failed for good (until the study grows, or the operator runs ``retry``)."""
        with self._tx() as db:
            db.execute("UPDATE studies SET state='failed', attempts=attempts+1, last_error=?,"
                       " updated_at=? WHERE uid=?",
                       (redact(error)[:_MAX_ERROR], now, uid))  # fmt: skip

    def drop(self, uid: str) -> None:
        """A study left with no instance (its files vanished before it was sent)."""
        with self._tx() as db:
            db.execute("DELETE FROM studies WHERE uid=? AND state!='done'", (uid,))

    def prune(self, before: float) -> int:
        """Forget files no longer in the spool (deleted, moved, quarantined) whose row has not
        changed since ``before``: the queue then grows with what the spool holds, not with
        everything it ever held. A study that grows later is checked on what is left."""
        with self._tx() as db:
            cursor = db.execute("DELETE FROM files WHERE state IN ('deleted', 'moved',"
                                " 'quarantined') AND updated_at<?", (before,))  # fmt: skip
            return int(cursor.rowcount)

    # -- reading the whole -------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts of studies and files by state, the last error and success, the oldest
        unsent study (for the status file, the health check and ``xnatsync status``)."""
        studies = dict.fromkeys(STUDY_STATES, 0)
        studies.update(self._read("SELECT state, count(*) FROM studies GROUP BY state"))
        files = dict.fromkeys(ACTIVE, 0)  # by the state index: cheap however long the history
        marks = ",".join("?" * len(ACTIVE))
        files.update(self._read(f"SELECT state, count(*) FROM files WHERE state IN ({marks})"
                                " GROUP BY state", ACTIVE))  # fmt: skip
        oldest = self._read("SELECT min(pending_since) FROM studies WHERE state IN"
                            " ('pending', 'sending')")[0][0]  # fmt: skip
        success = self._read("SELECT max(done_at) FROM studies WHERE state='done'")[0][0]
        error = self._read("SELECT uid, last_error, updated_at FROM studies WHERE last_error"
                           " IS NOT NULL ORDER BY updated_at DESC LIMIT 1")  # fmt: skip
        failed = self._read("SELECT uid, session, attempts, last_error FROM studies WHERE"
                            " state='failed' ORDER BY updated_at DESC LIMIT 20")  # fmt: skip
        return {
            "studies": studies,
            "files": files,
            "oldest_pending_since": oldest,
            "last_success": success,
            "last_error": (
                {"study": error[0][0], "error": error[0][1], "at": error[0][2]} if error else None
            ),
            "failed": [
                {"study": u, "session": s, "attempts": a, "error": e} for u, s, a, e in failed
            ],
        }


def describe(path: Path, now: float) -> str:
    """``xnatsync status --journal STATE/queue.db``: the watch queue in a few lines (only
    reads; a running daemon is not disturbed)."""
    if not path.exists():
        raise JournalError(f"no watch queue at {path}")
    with Queue.open(path, readonly=True) as queue:
        info = queue.summary()
    studies, files = info["studies"], info["files"]
    oldest = info["oldest_pending_since"]
    lines = [
        f"watch queue {path}",
        "  studies: " + ", ".join(f"{studies[s]} {s}" for s in STUDY_STATES),
        "  files:   " + ", ".join(f"{n} {s}" for s, n in files.items() if n),
        f"  backlog age: {0 if oldest is None else now - oldest:.0f} s",
        f"  last success: {_when(info['last_success'], now)}",
    ]
    error = info["last_error"]
    if error is not None:
        lines.append(f"  last error ({_when(error['at'], now)}): study {error['study']}: "
                     f"{error['error']}")  # fmt: skip
    lines += [f"  failed: {f['session'] or f['study']}: {f['error']}" for f in info["failed"]]
    return "\n".join(lines)


def _when(at: float | None, now: float) -> str:
    return "never" if at is None else f"{now - at:.0f} s ago"
