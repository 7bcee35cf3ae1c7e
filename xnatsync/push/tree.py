"""Where a local file goes in XNAT: the tree's layout read backwards (pure).

A tree made by ``pull`` (its default layout, ``layout.DEFAULT_TEMPLATES``) holds::

    {project}/resources/{resource}/files/{path}                                  project
    {project}/{subject}/resources/{resource}/files/{path}                        subject
    {project}/{subject}/{experiment}/resources/{resource}/files/{path}           session
    {project}/{subject}/{experiment}/scans/{scan}-{type}/resources/{resource}/files/{path}
    {project}/{subject}/{experiment}/assessors/{container}/resources/{resource}/files/{path}
    {project}/{subject}/{experiment}/reconstructions/{container}/resources/…/files/{path}

and ``push --layout`` takes other templates in pull's grammar. ``place`` reads a path
relative to the tree's root into a ``Target``: labels, never accession IDs (another XNAT, or
another project, has other IDs). Rules, documented because a name can be read two ways (the
matching itself is ``layout.Reader``'s):

* A path is read by the one level whose template matches all of it (so under the default a
  subject labelled ``resources`` is read as a subject only if the segment after it is not
  ``{resource}/files``). A path two levels' templates match (one template for every level,
  with segments that vanish when empty) is read as the level the pull journal names, and
  refused, naming both, when there is no journal to ask.
* ``{scan}-{type}``: XNAT's scan IDs are series numbers in practice, so without other
  knowledge the scan ID is the text before the first ``-`` and the rest is the type (a folder
  without ``-`` is an ID and no type). Where the tree was made by ``pull``, its journal knows
  each file's level and scan ID (``known``, by relative path) and that wins: a scan ID with a
  ``-`` in it comes back right, and a path two levels' templates match is read as the level
  the journal names. A type is read as pull wrote it: XNAT's zip naming made its
  non-word characters ``_``, so a scan push creates gets ``T1_MPRAGE`` for ``T1 MPRAGE``.
* Assessor and reconstruction folders (``{container}``) name one *that exists* in the target
  session, by ID (what ``pull`` writes) or by label; push fills their (OUT) resources but
  never creates one — its type and label are not in the tree. ``Target.scan`` holds the
  folder name; the run resolves it against the target session (``NotPushedError`` for that
  file when it is not there).
* Any other path raises ``UnplacedError``, a usage error naming it (the run stops before
  sending anything).

The project folder itself is not part of a ``Target``: the push names the target project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from xnatsync.errors import UsageError, XnatSyncError
from xnatsync.layout import DEFAULT_LAYOUT, READ_ORDER, Reader
from xnatsync.model import Level

MEMBER_KINDS = {Level.ASSESSOR: "assessors", Level.RECONSTRUCTION: "reconstructions"}  # URLs
Known = tuple[Level, str]  # what the tree's pull journal says of a path: level, container ID


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


DEFAULT_READER = Reader(DEFAULT_LAYOUT)


def place(
    rel: PurePosixPath,
    known: Mapping[str, Known] | None = None,
    reader: Reader = DEFAULT_READER,
) -> Target:
    """The target of ``rel`` (relative to the tree's root); ``UnplacedError`` if it does not
    fit the layout, or fits two levels and the pull journal does not say which."""
    found = reader.read(str(rel))
    if not found:
        raise UnplacedError(f"{rel}: fits no level of the layout ({_shapes(reader)})")
    said = (known or {}).get(str(rel))
    if len(found) > 1 and said is not None:
        found = [p for p in found if p.level is said[0]] or found
    if len(found) > 1:
        levels = " and ".join(p.level.value for p in found)
        raise UnplacedError(
            f"{rel}: reads as a file of a {levels} under this layout, and no pull journal "
            "says which; give per-level templates (LEVEL=TEMPLATE) that tell them apart"
        )
    v, level = found[0].values, found[0].level
    scan = v.get("scan") or v.get("container", "")
    kind = v.get("type", "")
    if level is Level.SCAN and said is not None and said[0] is level and said[1] != scan:
        # the journal knows the ID: a template split it wrongly at a "-" inside it
        joined = f"{scan}-{kind}" if kind else scan
        if joined == said[1] or joined.startswith(said[1] + "-"):
            scan, kind = said[1], joined[len(said[1]) + 1 :]
    return Target(level, v.get("subject", ""), v.get("experiment", ""), scan, kind,
                  v["resource"], v["path"])  # fmt: skip


def _shapes(reader: Reader) -> str:
    layout = reader.layout
    return "; ".join(f"{level.value}: {layout.sources[level]}" for level in READ_ORDER)
