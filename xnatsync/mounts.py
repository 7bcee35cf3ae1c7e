"""Which filesystem a path is on, from the kernel's mount table (``/proc/self/mountinfo``).

The journal is SQLite in WAL mode, whose index lives in a shared-memory file that only
processes on one host share, and whose locks are POSIX locks that Lustre (mounted ``localflock``
or ``noflock``), GPFS and NFS either keep per host or do not keep at all. SQLite's own advice is
to keep a database that several processes use off network filesystems. So before a pull opens
its journal, ``network_filesystem`` says whether the journal's folder is on one; the run then
opens it in exclusive locking mode, which keeps the WAL index in the process's memory (no
``-shm``) and takes SQLite's lock once for the run (``journal_schema.configure``).

Where there is no mount table (macOS, or /proc not mounted) nothing is known and nothing is
refused. The parsing is pure (``parse_mountinfo``, ``filesystem_of``); one function reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "ceph", "fuse.ceph-fuse",
        "glusterfs", "fuse.glusterfs", "beegfs", "afs", "panfs", "wekafs", "pvfs2", "orangefs",
        "ocfs2", "gfs2", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.davfs2", "davfs",
        "ncpfs", "fuse.juicefs", "fuse.rclone",
    }
)  # fmt: skip
"""Filesystem types (mountinfo's field after " - ") SQLite's WAL journal must not live on."""


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a ``/proc/self/mountinfo`` text, in its order; malformed lines skipped."""
    mounts = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if sep and len(fields) >= 5 and len(rest) >= 2:
            mounts.append(Mount(_unescape(fields[4]), rest[0], _unescape(rest[1])))
    return mounts


def filesystem_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount ``path`` (absolute, symlinks resolved) is on: the last-mounted of the
    longest mount points that contain it (a later mount over the same point hides earlier)."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.point.rstrip("/") or "/"
        inside = point == "/" or path == point or path.startswith(point + "/")
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = mount
    return best


def read_mount_table() -> str:
    """This process's mount table, or "" where the system has none."""
    try:
        return MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return ""


def network_filesystem(folder: Path, table: str | None = None) -> Mount | None:
    """The network-filesystem mount ``folder`` is (or would be created) on, or None.

    ``table`` is a mountinfo text (read from /proc when None). The folder need not exist:
    its nearest existing parent decides, with symlinks resolved."""
    text = read_mount_table() if table is None else table
    mount = filesystem_of(os.path.realpath(folder), parse_mountinfo(text))
    return mount if mount is not None and mount.fstype in NETWORK_FILESYSTEMS else None
