"""Frozen value types shared by every stage: experiments, remote files, local files, states.

A ``RemoteFile`` is one catalog entry as the XNAT listing describes it. Its ``key`` is the file's
XNAT identity (project, owner, container, resource label, path), independent of any local layout:
the journal stores files under this key, so a layout change moves files instead of re-fetching.

Invariants: ``path`` is "/"-separated and relative as XNAT spells it (not yet checked for safety:
``xnatsync.paths`` does that); ``digest`` is lower-case MD5 hex or None; ``size`` is None when
the listing gives no trustworthy size (XNAT reports 0 in some listing paths).
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field


class Level(enum.StrEnum):
    """Where a resource hangs in XNAT's hierarchy."""

    PROJECT = "project"
    SUBJECT = "subject"
    EXPERIMENT = "experiment"
    SCAN = "scan"
    ASSESSOR = "assessor"
    RECONSTRUCTION = "reconstruction"


class FileState(enum.StrEnum):
    """A file's state in the journal. ``DONE`` only after it is verified at its final name."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Experiment:
    """One experiment (imaging session or other subject assessor) as listed under a project."""

    id: str
    label: str
    project: str
    subject_id: str
    subject_label: str
    xsi_type: str
    date: str = ""
    insert_date: str = ""
    last_modified: str = ""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file in an XNAT resource catalog, as listed by the server."""

    project: str
    subject_id: str
    subject: str
    experiment_id: str
    experiment: str
    level: Level
    container: str
    container_type: str
    resource: str
    path: str
    uri: str
    size: int | None
    digest: str | None

    key: str = field(init=False, repr=False, compare=False)
    """The file's XNAT identity; NFC so that NFD and NFC spellings are one file.

    Shape: ``project/owner/level/container/resource/path``, so that sorting by key groups the
    files of one experiment together (the engine plans one experiment at a time). Computed once:
    sorting, diffing and journaling read it many times per file.
    """
    owner: str = field(init=False, repr=False, compare=False)
    """Accession ID of the object the resource belongs to: experiment, subject, or ""."""

    def __post_init__(self) -> None:
        if self.level is Level.PROJECT:
            owner = ""
        elif self.level is Level.SUBJECT:
            owner = self.subject_id
        else:
            owner = self.experiment_id
        path = unicodedata.normalize("NFC", self.path)
        parts = (self.project, owner, self.level.value, self.container, self.resource, path)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "key", "/".join(parts))


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A journal row plus the file's current ``lstat`` (``disk_*`` None: no regular file)."""

    key: str
    relpath: str
    size: int | None
    mtime_ns: int | None
    md5: str | None
    remote_digest: str | None
    state: FileState
    disk_size: int | None = None
    disk_mtime_ns: int | None = None
