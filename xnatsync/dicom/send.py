"""Sends one study through XNAT's import service: look, send what is missing, check.

Invariants:

* Every attempt starts by looking at the archive: the instances already there (scan =
  SeriesNumber, file = the member's base name, as XNAT keeps them, xnat-api §11.8) are not sent
  again. So a retry after a 5xx, a reset or a timeout, when the first import may have been
  applied, sends only what is missing; a rerun after success sends nothing.
* The zip of the missing instances streams from disk with its length known before the first
  byte (``dicomzip``); ``dest`` and ``overwrite=append`` are always explicit, so a study that
  grew since it was sent is appended into the same session, never a second one. A study over
  ``part_bytes`` goes in several requests, cut between scans, into that same session.
* A study is ``done`` in the journal only after a fresh listing shows every instance archived
  with its size; its fingerprint (the set of SOPInstanceUIDs) tells a later run whether the
  study changed since.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from xnatsync.dicom.dicomzip import ZipPlan, member_names, zip_stream
from xnatsync.dicom.instance import Instance
from xnatsync.dicom.labels import Labelled
from xnatsync.errors import IntegrityError, XnatSyncError
from xnatsync.events import ExperimentPlanned, FileDone, FileFailed, Reporter
from xnatsync.journal import Journal
from xnatsync.model import Experiment, Level, RemoteFile
from xnatsync.scheduler import Attempts
from xnatsync.xnat import routes
from xnatsync.xnat.client import XnatClient

PART_BYTES = 2 << 30  # a study bigger than this goes in several requests, cut between scans

Keyed = tuple[Instance, tuple[str, str]]


def parts(missing: list[Keyed], budget: int) -> list[list[Keyed]]:
    """``missing`` (in study order) cut between scans into requests of at most ``budget`` file
    bytes (a scan bigger than that goes alone); each is appended to the same session."""
    out: list[list[Keyed]] = []
    size = 0
    for _scan, group in itertools.groupby(missing, key=lambda m: m[1][0]):
        unit = list(group)
        unit_size = sum(i.size for i, _ in unit)
        if not out or size + unit_size > budget:
            out.append([])
            size = 0
        out[-1].extend(unit)
        size += unit_size
    return out


def fingerprint(item: Labelled) -> str:
    """The study's identity as sent: its SOPInstanceUIDs (a new instance changes it)."""
    uids = "\n".join(sorted(i.sop_uid for i in item.study.instances))
    return hashlib.md5(uids.encode(), usedforsecurity=False).hexdigest()


def study_record(project: str, item: Labelled) -> RemoteFile:
    """The journal's row of a study (keyed by StudyInstanceUID under its session)."""
    return RemoteFile(
        project=project, subject_id=item.subject, subject=item.subject,
        experiment_id=item.session, experiment=item.session, level=Level.EXPERIMENT,
        container="", container_type="", resource="study", path=item.study.uid, uri="",
        size=item.study.size, digest=None,
    )  # fmt: skip


def study_label(item: Labelled) -> str:
    return f"study {item.study.uid} → {item.subject}/{item.session}"


@dataclass(kw_only=True)
class StudySender:
    """The import ``Runner``: one ``Labelled`` study per action."""

    client: XnatClient
    journal: Journal
    project: str
    reporter: Reporter
    attempts: Attempts
    sessions: dict[str, Experiment] = field(default_factory=dict)  # archived, by label
    part_bytes: int = PART_BYTES
    to_prearchive: bool = False  # else the archive (with an explicit session destination)

    async def run(self, item: Labelled) -> None:
        label = study_label(item)
        tries = 0

        async def attempt(progress: Callable[[int], None]) -> None:
            nonlocal tries
            tries += 1
            await self._attempt(item, progress, first=tries == 1)

        try:
            await self.attempts.run(item.study.uid, label, item.study.size, attempt)
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            self.journal.mark_failed(study_record(self.project, item), str(exc), label)
            self.reporter.emit(FileFailed(item.study.uid, label, str(exc)))

    async def _attempt(
        self, item: Labelled, progress: Callable[[int], None], *, first: bool
    ) -> None:
        """Look (a later attempt lists the project's sessions again: the failed one may have
        made this one), send what is missing, check."""
        archived = await self._archived(item, refresh=not first)
        missing = [(i, key) for i, key in _keyed(item) if key not in archived]
        if first:  # planned once per study, not per attempt
            size = sum(i.size for i, _ in missing)
            have = item.study.count - len(missing)
            self.reporter.emit(ExperimentPlanned(self.project, item.session, len(missing), size,
                                                 have, 0, 0, 0))  # fmt: skip
        if self.to_prearchive:  # XNAT merges by project, study and label (xnat-api §11.2)
            route = routes.import_service(
                routes.prearchive_destination(self.project), overwrite="append",
                subject=item.subject, session=item.session,
            )  # fmt: skip
        else:
            route = routes.import_service(
                routes.archive_destination(self.project, item.subject, item.session),
                overwrite="append",
            )
        for part in parts(missing, self.part_bytes):
            plan = ZipPlan([i for i, _ in part], names=[f"{s}/{n}" for _, (s, n) in part])
            await self.client.import_zip(route, plan.total_size, _body(plan, progress))
        if missing:
            archived = await self._archived(item, refresh=True)
        self._check(item, [i for i, _ in missing], archived)

    async def _archived(
        self, item: Labelled, *, refresh: bool = False
    ) -> dict[tuple[str, str], int | None]:
        """(scan, file name) → size of the session's archived DICOM files (empty: no session).
        ``sessions`` is the run's listing from its start; ``refresh`` lists them again."""
        if self.to_prearchive:
            return await self._prearchived(item)
        if refresh:
            experiments = await self.client.list_experiments(self.project)
            self.sessions.update((e.label, e) for e in experiments)
        experiment = self.sessions.get(item.session)
        if experiment is None:
            return {}
        files = await self.client.list_experiment_files(self.project, experiment)
        return {(f.container, f.path): f.size for f in files
                if f.level is Level.SCAN and f.resource == "DICOM"}  # fmt: skip

    async def _prearchived(self, item: Labelled) -> dict[tuple[str, str], int | None]:
        """The same, of the prearchive sessions of this study and session label."""
        rows = await self.client.list_rows(routes.prearchive_sessions(self.project))
        found: dict[tuple[str, str], int | None] = {}
        for row in rows:
            if row.get("tag") != item.study.uid or row.get("name") != item.session:
                continue
            url = row.get("url", "")
            for scan in await self.client.list_rows(routes.prearchive_listing(url, "/scans")):
                below = f"/scans/{routes.segment(scan.get('ID', ''))}/resources/DICOM/files"
                files = await self.client.list_rows(routes.prearchive_listing(url, below))
                for f in files:
                    size = f.get("Size", "")
                    found[(scan.get("ID", ""), f.get("Name", ""))] = (
                        int(size) if size.isdigit() else None
                    )
        return found

    def _check(
        self, item: Labelled, sent: list[Instance], archived: dict[tuple[str, str], int | None]
    ) -> None:
        """Every instance of the study archived with its size; then ``done``."""
        absent = [i for i, key in _keyed(item) if archived.get(key, -1) not in (i.size, None)]
        if absent:
            raise IntegrityError(
                f"{len(absent)} of {item.study.count} instances are not in the "
                f"{'prearchive' if self.to_prearchive else 'archived'} session {item.session} "
                f"after the import (first: {absent[0].path})"
            )
        self.journal.mark_done(study_record(self.project, item), study_label(item),
                               item.study.size, 0, fingerprint(item))  # fmt: skip
        for instance in sent:
            self.reporter.emit(FileDone(instance.sop_uid, str(instance.path), instance.size, "",
                                        "uploaded"))  # fmt: skip


def _keyed(item: Labelled) -> list[tuple[Instance, tuple[str, str]]]:
    """Each instance with where XNAT keeps it: (scan ID, file name) from its zip member name."""
    instances = item.study.instances
    out = []
    for instance, name in zip(instances, member_names(instances), strict=True):
        folder, _, base = name.partition("/")
        out.append((instance, (folder, base)))
    return out


def _body(plan: ZipPlan, progress: Callable[[int], None]) -> Callable[[], AsyncIterator[bytes]]:
    """The zip of ``plan`` afresh for each send (a re-login resends), counted as it goes."""
    return lambda: _counted(zip_stream(plan), progress)


async def _counted(
    chunks: AsyncIterator[bytes], progress: Callable[[int], None]
) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        progress(len(chunk))
        yield chunk
