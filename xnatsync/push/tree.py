"""Where a local file goes in XNAT: the pull layout read backwards (pure).

A tree made by ``pull`` (its default layout) holds, under one project folder::

    {project}/resources/{resource}/files/{path}                                  project
    {project}/{subject}/resources/{resource}/files/{path}                        subject
    {project}/{subject}/{session}/resources/{resource}/files/{path}              session
    {project}/{subject}/{session}/scans/{scan}-{type}/resources/{resource}/files/{path}

``place`` reads a relative path of that shape into a ``Target``: labels, never accession IDs
(another XNAT, or another project, has other IDs). Rules, documented because a name can be read
two ways:

* The shape is read from the left at fixed depths, so a subject labelled ``resources`` is
  read as a subject only if the segment after it is not ``{resource}/files``.
* ``{scan}-{type}``: XNAT's scan IDs are series numbers in practice, so without other
  knowledge the scan ID is the text before the first ``-`` and the rest is the type (a folder
  without ``-`` is an ID and no type). Where the tree was made by ``pull``, its journal knows
  each file's scan ID (``known_scans``, by relative path) and that wins: a scan ID with a ``-``
  in it comes back right.
* ``{session}/assessors/{A}/resources/…`` and ``{session}/reconstructions/{R}/…``: ``A`` and
  ``R`` name an assessor or reconstruction *that exists* in the target session, by ID (what
  ``pull`` writes) or by label; push fills their (OUT) resources but never creates one — its
  type and label are not in the tree. ``Target.scan`` holds the folder name; the run resolves
  it against the target session (``NotPushedError`` for that file when it is not there).
* Any other path that does not fit raises ``UnplacedError``, a usage error naming it (the run
  stops before sending anything).

The project folder itself is not part of a ``Target``: the push names the target project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from xnatsync.errors import UsageError, XnatSyncError
from xnatsync.model import Level

_FILES = ("resources", "files")
_MEMBERS = {"assessors": Level.ASSESSOR, "reconstructions": Level.RECONSTRUCTION}
MEMBER_KINDS = {level: kind for kind, level in _MEMBERS.items()}  # level → its URL segment


class UnplacedError(UsageError):
    """A local path that does not fit the layout."""


class NotPushedError(XnatSyncError):
    """A file push cannot send (an assessor or reconstruction the target lacks): it fails."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one local file goes, by labels: its owner, resource and path in the resource."""

    level: Level
    subject: str
    session: str
    scan: str
    scan_type: str
    resource: str
    path: str

    @property
    def owner(self) -> tuple[Level, str, str, str]:
        """The object holding the resource (project, subject, session, scan, assessor or
        reconstruction)."""
        return (self.level, self.subject, self.session, self.scan)

    @property
    def key(self) -> str:
        """The file's identity in the target project, by labels (the push journal's key)."""
        return "/".join((self.level.value, self.subject, self.session, self.scan,
                         self.resource, self.path))  # fmt: skip


def place(rel: PurePosixPath, known_scans: Mapping[str, str] | None = None) -> Target:
    """The target of ``rel`` (relative to the project folder); ``UnplacedError`` if it does
    not fit the layout."""
    parts = rel.parts
    for depth, level in ((0, Level.PROJECT), (1, Level.SUBJECT), (2, Level.EXPERIMENT)):
        if _files_at(parts, depth):
            subject = parts[0] if depth >= 1 else ""
            session = parts[1] if depth >= 2 else ""
            return Target(level, subject, session, "", "", parts[depth + 1],
                          "/".join(parts[depth + 3 :]))  # fmt: skip
    if len(parts) > 4 and parts[2] in _MEMBERS and _files_at(parts, 4):
        return Target(_MEMBERS[parts[2]], parts[0], parts[1], parts[3], "", parts[5],
                      "/".join(parts[7:]))  # fmt: skip
    if len(parts) > 4 and parts[2] == "scans" and _files_at(parts, 4):
        folder = parts[3]
        scan = (known_scans or {}).get(str(rel))
        if scan is not None and (folder == scan or folder.startswith(scan + "-")):
            kind = folder[len(scan) + 1 :]
        else:
            scan, _, kind = folder.partition("-")
        if not scan:
            raise UnplacedError(f"{rel}: the scan folder {folder!r} names no scan ID")
        return Target(Level.SCAN, parts[0], parts[1], scan, kind, parts[5],
                      "/".join(parts[7:]))  # fmt: skip
    raise UnplacedError(
        f"{rel}: not in the pull layout ({{subject}}/{{session}}/scans/{{scan}}-{{type}}/"
        "resources/{resource}/files/{path}, or a project, subject or session resource)"
    )


def _files_at(parts: tuple[str, ...], depth: int) -> bool:
    """Whether ``resources/{resource}/files/{path…}`` starts at ``depth``."""
    return len(parts) > depth + 3 and parts[depth] == _FILES[0] and parts[depth + 2] == _FILES[1]
