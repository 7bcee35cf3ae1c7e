"""What a pull selects: subjects, experiments, types, scan types, resources, a date.

Pure predicates over listing values; nothing here does I/O. Labels and accession IDs are both
accepted wherever XNAT accepts both. An empty set means "no filter".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from xnatsync.model import Experiment, Level, RemoteFile
from xnatsync.shards import Shard


@dataclass(frozen=True, slots=True)
class Selection:
    subjects: frozenset[str] = frozenset()
    experiments: frozenset[str] = frozenset()
    xsi_types: frozenset[str] = frozenset()
    scan_types: tuple[str, ...] = ()
    resources: frozenset[str] = frozenset()
    since: dt.date | None = None
    assessors: bool = True
    session_resources: bool = True
    subject_resources: bool = True
    project_resources: bool = True
    search_ids: frozenset[str] | None = None  # accession IDs a server search returned
    shard: Shard | None = None  # only the owners of this shard (see ``in_shard``)

    def in_shard(self, shard: Shard | None) -> Selection:
        """This selection, cut to one shard: its experiments and subjects by accession ID, and
        the project's own resources only in shard 0."""
        if shard is None:
            return self
        own_project = self.project_resources and shard.owner_in("")
        return replace(self, shard=shard, project_resources=own_project)

    def wants_experiment(self, exp: Experiment) -> bool:
        if self.shard is not None and not self.shard.owns(exp.id):
            return False
        if self.subjects and not {exp.subject_id, exp.subject_label} & self.subjects:
            return False
        if self.experiments and not {exp.id, exp.label} & self.experiments:
            return False
        if self.search_ids is not None and exp.id not in self.search_ids:
            return False
        if self.xsi_types and exp.xsi_type.lower() not in {t.lower() for t in self.xsi_types}:
            return False
        return self.since is None or changed_since(exp, self.since)

    def wants_subject(self, subject_id: str, subject_label: str) -> bool:
        if not self.subject_resources:
            return False
        if self.shard is not None and not self.shard.owns(subject_id):
            return False
        return not self.subjects or bool({subject_id, subject_label} & self.subjects)

    def wants_file(self, remote: RemoteFile) -> bool:
        if self.resources and remote.resource not in self.resources:
            return False
        if remote.level is Level.SCAN and self.scan_types:
            return any(_glob(remote.container_type, pattern) for pattern in self.scan_types)
        if remote.level is Level.ASSESSOR:
            return self.assessors
        if remote.level in (Level.EXPERIMENT, Level.RECONSTRUCTION):
            return self.session_resources and not self.scan_types
        return True

    def names_in(self, exp: Experiment) -> tuple[set[str], set[str]]:
        """The requested subject and experiment names (labels or IDs) ``exp`` answers to."""
        subjects = {exp.subject_id, exp.subject_label} & self.subjects
        return subjects, {exp.id, exp.label} & self.experiments

    def scan_types_matching(self, files: Iterable[RemoteFile]) -> set[str]:
        """The ``scan_types`` patterns that some scan file of ``files`` matches."""
        types = {f.container_type for f in files if f.level is Level.SCAN}
        return {p for p in self.scan_types if any(_glob(t, p) for t in types)}


def _glob(value: str, pattern: str) -> bool:
    return fnmatchcase(value.casefold(), pattern.casefold())


def changed_since(exp: Experiment, since: dt.date) -> bool:
    """Inserted or modified on or after ``since``, by the server's own dates (never our clock)."""
    stamps = [s[:10] for s in (exp.insert_date, exp.last_modified) if s]
    return any(stamp >= since.isoformat() for stamp in stamps) if stamps else True
