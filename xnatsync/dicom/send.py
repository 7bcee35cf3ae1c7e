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
* Never a second session for one study: the session is found by label, or by the study's
  UID (XNAT keeps the StudyInstanceUID as the session's ``UID``; the project's experiments
  listing gives it, ``sessions``). A study archived before under another label (the label
  templates changed between runs) is appended into that session, with a ``Notice``; a label
  whose session holds another study fails this study before anything is sent (XNAT would
  refuse the merge, or merge two studies).
* A study is ``done`` in the journal only after a fresh listing shows every instance archived
  under its name (scan, file); an instance that is not there fails the study
  (``IntegrityError``). Bytes are not compared, and no MD5 is computed: XNAT's importer writes
  each object anew as it stores it (``GradualDicomImporter.write``: a zero preamble, its own
  file meta information with dcm4che's implementation UID, the header re-encoded, only the
  rest copied byte for byte; a site anonymization script edits more), so an archived file's
  size and MD5 differ from the sent file's for nearly every scanner's output, and a comparison
  would report every study. The transfer is guarded by the zip's CRC-32, which XNAT's
  ``ZipInputStream`` checks on every entry (a damaged member fails the request), and the
  file by its size and presence when the zip is built (``zipbody``). An MD5 of every byte sent
  cost a third of the client's CPU in the import benchmark (it shares two cores with the
  server there) and decided nothing. Its fingerprint (the set of SOPInstanceUIDs) tells a
  later run whether the study changed since.
* ``--to archive`` is an import with an explicit archive ``dest``: XNAT's DICOM-zip importer
  builds and archives the session in that request (xnat-api §5.1) on every version that has
  the DICOM-zip handler, so there is no prearchive step to commit and no version switch; the
  ``Direct-Archive`` flag (1.8.3+) is a different path (the gradual-DICOM receiver writing
  straight into the archive) that the DICOM-zip handler does not take.
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
from xnatsync.events import ExperimentPlanned, FileDone, FileFailed, Notice, Reporter
from xnatsync.journal import Journal
from xnatsync.model import Experiment, Level, RemoteFile
from xnatsync.scheduler import Attempts
from xnatsync.xnat import parse, routes
from xnatsync.xnat.client import XnatClient

PART_BYTES = 2 << 30  # a study bigger than this goes in several requests, cut between scans

Keyed = tuple[Instance, tuple[str, str]]
Archived = set[tuple[str, str]]  # (scan, file) of each archived DICOM file


@dataclass
class Sessions:
    """A project's archived sessions, by label and by StudyInstanceUID (their ``UID``)."""

    by_label: dict[str, Experiment] = field(default_factory=dict)
    by_uid: dict[str, Experiment] = field(default_factory=dict)


async def list_sessions(client: XnatClient, project: str) -> Sessions:
    """One experiments listing of ``project`` with the ``UID`` column (xnat-api §3.3.1)."""
    route = routes.experiments(project)
    params = {**route.params, "columns": f"{route.params['columns']},UID"}
    rows = await client.list_rows(routes.Route(route.path, params))
    found = Sessions()
    for row, experiment in zip(rows, parse.experiments_from_rows(project, rows), strict=True):
        found.by_label[experiment.label] = experiment
        if uid := row.get("UID", "").strip():
            found.by_uid.setdefault(uid, experiment)
    return found


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
    by_uid: dict[str, Experiment] = field(default_factory=dict)  # archived, by StudyInstanceUID

    def session_of(self, item: Labelled) -> Experiment | None:
        """The archived session this study belongs in: the one holding its UID, else the one
        with its label. A label that holds another study fails this one (not retried: looking
        again would find the same)."""
        by_uid = self.by_uid.get(item.study.uid)
        if by_uid is not None:
            return by_uid
        by_label = self.sessions.get(item.session)
        if by_label is not None:
            other = next((u for u, e in self.by_uid.items() if e.id == by_label.id), "")
            if other:
                raise XnatSyncError(
                    f"session {item.session} already holds another study ({other}); "
                    f"not merged: give this study another session label"
                )
        return by_label

    async def run(self, item: Labelled) -> None:
        label = study_label(item)
        tries = 0
        sent: set[tuple[str, str]] = set()  # (scan, file) sent by any attempt of this run

        async def attempt(progress: Callable[[int], None]) -> None:
            nonlocal tries
            tries += 1
            await self._attempt(item, progress, sent, first=tries == 1)

        try:
            await self.attempts.run(item.study.uid, label, item.study.size, attempt)
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            self.journal.mark_failed(study_record(self.project, item), str(exc), label)
            self.reporter.emit(FileFailed(item.study.uid, label, str(exc)))

    async def _attempt(
        self,
        item: Labelled,
        progress: Callable[[int], None],
        sent: set[tuple[str, str]],
        *,
        first: bool,
    ) -> None:
        """Look (a later attempt lists the project's sessions again: the failed one may have
        made this one), send what is missing, check."""
        archived, (subject, session) = await self._archived(item, refresh=not first)
        keyed = _keyed(item)
        missing = [(i, key) for i, key in keyed if key not in archived]
        if first:  # planned once per study, not per attempt
            size = sum(i.size for i, _ in missing)
            have = item.study.count - len(missing)
            self.reporter.emit(ExperimentPlanned(self.project, item.session, len(missing), size,
                                                 have, 0, 0, 0))  # fmt: skip
            if session != item.session:
                self.reporter.emit(Notice(
                    f"study {item.study.uid} is archived as {subject}/{session}, not under "
                    f"its label {item.session}: what it lacks goes into {session}, no second "
                    "session is made"
                ))  # fmt: skip
        if self.to_prearchive:  # XNAT merges by project, study and label (xnat-api §11.2)
            route = routes.import_service(
                routes.prearchive_destination(self.project), overwrite="append",
                subject=item.subject, session=item.session,
            )  # fmt: skip
        else:
            route = routes.import_service(
                routes.archive_destination(self.project, subject, session), overwrite="append"
            )
        for part in parts(missing, self.part_bytes):
            plan = ZipPlan([i for i, _ in part], names=[f"{s}/{n}" for _, (s, n) in part])
            sent.update(key for _, key in part)
            await self.client.import_zip(route, plan.total_size, _body(plan, progress))
        if missing:
            archived, _ = await self._archived(item, refresh=True)
        self._check(item, keyed, sent, archived, session)

    async def _archived(
        self, item: Labelled, *, refresh: bool = False
    ) -> tuple[Archived, tuple[str, str]]:
        """The session's archived DICOM files (empty: no session yet) and its (subject,
        session) labels. ``sessions``/``by_uid`` are the run's listing from its start;
        ``refresh`` lists them again."""
        if self.to_prearchive:
            return await self._prearchived(item), (item.subject, item.session)
        if refresh:
            listed = await list_sessions(self.client, self.project)
            self.sessions.update(listed.by_label)
            self.by_uid.update(listed.by_uid)
        experiment = self.session_of(item)
        if experiment is None:
            return set(), (item.subject, item.session)
        files = await self.client.list_experiment_files(self.project, experiment)
        found = {(f.container, f.path) for f in files
                 if f.level is Level.SCAN and f.resource == "DICOM"}  # fmt: skip
        return found, (experiment.subject_label or item.subject, experiment.label)

    async def _prearchived(self, item: Labelled) -> Archived:
        """The same, of the prearchive sessions of this study and session label."""
        rows = await self.client.list_rows(routes.prearchive_sessions(self.project))
        found: Archived = set()
        for row in rows:
            if row.get("tag") != item.study.uid or row.get("name") != item.session:
                continue
            url = row.get("url", "")
            for scan in await self.client.list_rows(routes.prearchive_listing(url, "/scans")):
                below = f"/scans/{routes.segment(scan.get('ID', ''))}/resources/DICOM/files"
                files = await self.client.list_rows(routes.prearchive_listing(url, below))
                found.update((scan.get("ID", ""), f.get("Name", "")) for f in files)
        return found

    def _check(
        self,
        item: Labelled,
        keyed: list[Keyed],
        sent: set[tuple[str, str]],
        archived: Archived,
        session: str,
    ) -> None:
        """Every instance of the study archived under its name; then ``done``, and each one
        this run sent is reported uploaded."""
        where = f"{'prearchive' if self.to_prearchive else 'archived'} session {session}"
        absent = [i for i, key in keyed if key not in archived]
        if absent:
            raise IntegrityError(
                f"{len(absent)} of {item.study.count} instances are not in the {where} after "
                f"the import (first: {absent[0].path})"
            )
        self.journal.mark_done(study_record(self.project, item), study_label(item),
                               item.study.size, 0, fingerprint(item))  # fmt: skip
        for instance, key in keyed:
            if key in sent:
                self.reporter.emit(FileDone(instance.sop_uid, str(instance.path), instance.size,
                                            "", "uploaded"))  # fmt: skip


def _keyed(item: Labelled) -> list[Keyed]:
    """Each instance with where XNAT keeps it: (scan ID, file name) from its zip member name."""
    instances = item.study.instances
    out = []
    for instance, name in zip(instances, member_names(instances), strict=True):
        folder, _, base = name.partition("/")
        out.append((instance, (folder, base)))
    return out


def _body(
    plan: ZipPlan, progress: Callable[[int], None]
) -> Callable[[], AsyncIterator[memoryview]]:
    """The zip of ``plan`` afresh for each send (a re-login resends), counted as it goes."""
    return lambda: _counted(zip_stream(plan), progress)


async def _counted(
    chunks: AsyncIterator[memoryview], progress: Callable[[int], None]
) -> AsyncIterator[memoryview]:
    async for chunk in chunks:
        progress(len(chunk))
        yield chunk
