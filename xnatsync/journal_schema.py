"""The journal's schema: its migrations, the statements the writer batches, opening a connection
(read-only without writing, and errors whose advice is true of them).

``MIGRATIONS`` is ordered; migration i brings ``user_version`` from i to i + 1 in one
transaction. A journal newer than this code is refused, never downgraded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from xnatsync.errors import JournalError, JournalReadOnlyError

_FILES_V1 = """
CREATE TABLE files (
    key TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    owner TEXT NOT NULL,
    relpath TEXT NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    md5 TEXT,
    remote_digest TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL NOT NULL,
    seen_run INTEGER
) WITHOUT ROWID;
CREATE INDEX files_owner ON files (project, owner);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    command TEXT NOT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL DEFAULT '{}'
);
"""
_V2_RELPATH_INDEX = "CREATE INDEX files_relpath ON files (relpath);"
_V3_OWNERS = """
CREATE TABLE owners (
    project TEXT NOT NULL,
    owner TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (project, owner)
) WITHOUT ROWID;
"""

# an owner whose listing was unchanged is marked seen here, in one row, not in each file's row
# and the no-op fast path's per-owner scan reads this covering index alone
_V4_OWNER_SEEN = (
    "ALTER TABLE owners ADD COLUMN seen_run INTEGER;"
    "CREATE INDEX files_owner_scan ON files (project, owner, relpath, size, mtime_ns, state)"
)

# --changed-only: each owner's server dates when it was last mirrored whole (beside its
# fingerprint), and per project the last complete run's selection and layout, its newest server
# date, and when (client clock) the last full listing and the last complete run ran
_V5_CUTOFFS = """
ALTER TABLE owners ADD COLUMN stamps TEXT;
CREATE TABLE cutoffs (
    project TEXT PRIMARY KEY,
    shape TEXT NOT NULL,
    stamp TEXT NOT NULL,
    full_at REAL NOT NULL,
    done_at REAL NOT NULL
) WITHOUT ROWID
"""

# each pulled session's XNAT type by label, so that a push of the tree creates the sessions it
# lacks with their own type (``--xsi-type`` only where the tree does not say)
_V6_SESSION_TYPES = """
CREATE TABLE session_types (
    project TEXT NOT NULL,
    label TEXT NOT NULL,
    xsi_type TEXT NOT NULL,
    PRIMARY KEY (project, label)
) WITHOUT ROWID
"""

MIGRATIONS: tuple[str, ...] = (
    _FILES_V1,
    _V2_RELPATH_INDEX,
    _V3_OWNERS,
    _V4_OWNER_SEEN,
    _V5_CUTOFFS,
    _V6_SESSION_TYPES,
)
"""Ordered; migration i brings ``user_version`` from i to i + 1, in one transaction."""

COLUMNS = "key, project, owner, relpath, size, mtime_ns, md5, remote_digest, state, attempts"
WRITES = {
    "done": (
        "INSERT INTO files (key, project, owner, relpath, size, mtime_ns, md5, remote_digest,"
        " state, last_error, updated_at, seen_run) VALUES (?,?,?,?,?,?,?,?,'done',NULL,?,?)"
        " ON CONFLICT (key) DO UPDATE SET relpath=excluded.relpath, size=excluded.size,"
        " mtime_ns=excluded.mtime_ns, md5=excluded.md5, remote_digest=excluded.remote_digest,"
        " state='done', last_error=NULL, updated_at=excluded.updated_at,"
        " seen_run=coalesce(excluded.seen_run, seen_run)"
    ),
    "in_progress": (
        "INSERT INTO files (key, project, owner, relpath, state, attempts, updated_at, seen_run)"
        " VALUES (?,?,?,?,'in_progress',1,?,?) ON CONFLICT (key) DO UPDATE SET"
        " relpath=excluded.relpath, state='in_progress', attempts=attempts+1,"
        " updated_at=excluded.updated_at, seen_run=coalesce(excluded.seen_run, seen_run)"
    ),
    "failed": (
        "INSERT INTO files (key, project, owner, relpath, state, last_error, updated_at,"
        " seen_run) VALUES (?,?,?,?,'failed',?,?,?) ON CONFLICT (key) DO UPDATE SET"
        " state='failed', last_error=excluded.last_error, updated_at=excluded.updated_at,"
        " seen_run=coalesce(excluded.seen_run, seen_run)"
    ),
    "deleted": "UPDATE files SET state='deleted', updated_at=? WHERE key=?",
    "corrupt": "UPDATE files SET state='failed', last_error=?, updated_at=? WHERE key=?",
    "seen": "UPDATE files SET seen_run=? WHERE key=?",
    "owner_seen": "UPDATE owners SET seen_run=? WHERE project=? AND owner=?",
    "fingerprint": (
        "INSERT INTO owners (project, owner, fingerprint) VALUES (?,?,?)"
        " ON CONFLICT (project, owner) DO UPDATE SET fingerprint=excluded.fingerprint"
    ),
    "forget_owner": "DELETE FROM owners WHERE project=? AND owner=?",
    "stamps": "UPDATE owners SET stamps=? WHERE project=? AND owner=?",
    "session_type": (
        "INSERT INTO session_types (project, label, xsi_type) VALUES (?,?,?)"
        " ON CONFLICT (project, label) DO UPDATE SET xsi_type=excluded.xsi_type"
    ),
    "cutoff": (
        "INSERT INTO cutoffs (project, shape, stamp, full_at, done_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (project) DO UPDATE SET shape=excluded.shape, stamp=excluded.stamp,"
        " full_at=excluded.full_at, done_at=excluded.done_at"
    ),
}


def configure(conn: sqlite3.Connection, path: Path, *, exclusive: bool = False) -> None:
    """WAL, ``synchronous=NORMAL``. ``exclusive`` (a journal on a network filesystem): the
    connection holds its lock from its first access to its close, which SQLite asks for before
    WAL is entered to keep the WAL index in the process's memory instead of a ``-shm`` file
    mapped by every process (sqlite.org/wal.html, "Use of WAL Without Shared-Memory"); one
    process, whose run holds DEST's lock, then uses the journal at a time."""
    if exclusive:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(
            f"journal {path}: SQLite refused WAL mode (got {mode!r}); keep DEST/.xnatsync on a "
            "local filesystem or pass a local --journal path"
        )
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Apply the missing ``MIGRATIONS``, each with its version bump in one transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise JournalError(
            f"journal {path} has schema version {version}, newer than this xnatsync "
            f"({len(MIGRATIONS)}); upgrade xnatsync"
        )
    for number in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def require_current(conn: sqlite3.Connection, path: Path) -> None:
    """For a read-only open: the schema must already be this code's (nothing is migrated)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version != len(MIGRATIONS):
        raise JournalError(
            f"journal {path} has schema version {version}, this xnatsync expects "
            f"{len(MIGRATIONS)}; one pull (not a dry run) brings it up to date"
        )


def read_only_uri(path: Path) -> str:
    """Open without writing. With a ``-wal`` beside it (a run is live, or was killed) the WAL
    must be read too, which ``mode=ro`` does using the ``-shm`` already there; without one,
    ``immutable`` reads the main file and creates nothing (no ``-wal``/``-shm``, no locks)."""
    uri = path.absolute().as_uri()
    if Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists():
        return f"{uri}?mode=ro"
    return f"{uri}?mode=ro&immutable=1"


_READ_ONLY_WORDS = ("readonly", "read-only", "permission", "access", "unable to open")


def journal_error(path: Path, exc: sqlite3.Error) -> JournalError:
    """The error to raise for a journal SQLite will not use, with advice that is true of it.

    Read-only is not damage: only a damaged journal is worth moving aside, which costs little
    since a pull adopts the files on disk by hashing them."""
    text = str(exc)
    if any(word in text.lower() for word in _READ_ONLY_WORDS):
        return JournalReadOnlyError(
            f"journal {path} cannot be written ({text}): it is on a read-only disk or not "
            "writable by this user. Run this where the journal is writable; "
            "'xnatsync status' only reads it."
        )
    if "locked" in text.lower() or "busy" in text.lower():
        return JournalError(f"journal {path} is in use by another process ({text})")
    return JournalError(
        f"journal {path} is damaged ({text}). Move it aside with its -wal and -shm files: the "
        "next pull adopts the files already on disk by hashing them, and downloads only what "
        "is missing or differs."
    )
