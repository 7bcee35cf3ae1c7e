"""The emulator's archive: in-memory records with dict indexes, file bytes on disk. Lookups and
creation live here; removal, relabelling, sharing and `owner_of` in `edits.Edits` (mixed in);
reconstructions are created by `reconstructions.ensure_reconstruction`.

Invariants: every lookup is a dict access (no scans over the archive per request; an assessor
label is looked up among its own session's assessors); listing one session's files is O(files in
that session). Metadata is JSON in `root/metadata.json`, written by `save()` (atomically, only
when something changed); file bytes live at `root/archive/{project}/{resource id}/{relpath}`, so
relabelling never moves bytes.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

from xnatsync.emulator import persist
from xnatsync.emulator.blobs import Blobs, safe_relpath
from xnatsync.emulator.edits import Edits
from xnatsync.emulator.labels import Labels
from xnatsync.emulator.records import (
    Assessor,
    Experiment,
    FileEntry,
    Inputs,
    Owner,
    Project,
    Reconstruction,
    Resource,
    Scan,
    Subject,
    now_stamp,
)
from xnatsync.emulator.stored_search import StoredSearch

METADATA = "metadata.json"


class Store(Edits):
    """All archive state of one emulator. Mutators mark the store dirty; `save()` persists."""

    def __init__(self, root: pathlib.Path, site_id: str = "XNAT") -> None:
        self.root = root
        self.site_id = site_id
        self.projects: dict[str, Project] = {}
        self.subjects: dict[str, Subject] = {}
        self.experiments: dict[str, Experiment] = {}
        self.resources: dict[int, Resource] = {}
        self.counters: dict[str, int] = {"subject": 0, "experiment": 0, "resource": 0, "scan": 0}
        self.saved_searches: dict[str, StoredSearch] = {}  # by ID (stored_search.py)
        self.dirty = False
        self.blobs = Blobs(root)
        self.labels = Labels()
        # XNAT's site setting `checksums` (default true): off, catalog entries get no digest
        self.checksums = True

    @classmethod
    def open(cls, root: pathlib.Path, site_id: str = "XNAT") -> Store:
        """A store rooted at `root`, loading `metadata.json` if an earlier run left one."""
        store = cls(root, site_id)
        meta = root / METADATA
        if meta.exists():
            persist.load_into(store, json.loads(meta.read_text("utf-8")))
        return store

    # --- lookups -------------------------------------------------------------------------

    def project(self, id_or_alias: str) -> Project | None:
        """A project by ID or alias."""
        found = self.projects.get(id_or_alias)
        if found is None and id_or_alias in self.labels.aliases:
            found = self.projects.get(self.labels.aliases[id_or_alias])
        return found

    def subject(self, project_id: str, id_or_label: str) -> Subject | None:
        """A subject of a project, by label in that project or by accession ID."""
        sid = self.labels.subjects.get((project_id, id_or_label), id_or_label)
        found = self.subjects.get(sid)
        return found if found is not None and found.belongs_to(project_id) else None

    def experiment(self, project_id: str | None, id_or_label: str) -> Experiment | None:
        """An experiment by accession ID, or by label when a project is given (§1.4)."""
        if project_id is None:
            return self.experiments.get(id_or_label)
        eid = self.labels.experiments.get((project_id, id_or_label), id_or_label)
        found = self.experiments.get(eid)
        return found if found is not None and found.belongs_to(project_id) else None

    def subjects_in(self, project: Project) -> list[Subject]:
        """The project's own subjects, then those shared into it."""
        shared = self.labels.shared_subjects.get(project.id, {})
        return [self.subjects[sid] for sid in (*project.subjects, *shared)]

    def experiments_in(self, project: Project) -> list[Experiment]:
        """The project's own experiments, then those shared into it."""
        shared = self.labels.shared_experiments.get(project.id, {})
        return [self.experiments[eid] for eid in (*project.experiments, *shared)]

    def assessor(self, experiment: Experiment, id_or_label: str) -> Assessor | None:
        """An assessor of a session by accession ID, else by its label within that session."""
        found = experiment.assessors.get(id_or_label)
        if found is None:
            labelled = (a for a in experiment.assessors.values() if a.label == id_or_label)
            found = next(labelled, None)
        return found

    def resource(self, owner: Owner, label_or_id: str) -> Resource | None:
        """A resource of `owner` by label, else by numeric `xnat_abstractresource_id`."""
        found = owner.resources.get(label_or_id)
        if found is None and label_or_id.isdigit():
            candidate = self.resources.get(int(label_or_id))
            if candidate is not None and owner.resources.get(candidate.label) is candidate:
                found = candidate
        return found

    def file_path(self, resource: Resource, relpath: str) -> pathlib.Path:
        """Where the bytes of a catalog entry live."""
        return self.blobs.path(resource, relpath)

    def temp_dir(self) -> pathlib.Path:
        """A scratch directory on the same filesystem as the archive (for atomic moves)."""
        return self.blobs.temp_dir()

    # --- creation ------------------------------------------------------------------------

    def _next(self, counter: str) -> int:
        self.counters[counter] += 1
        self.dirty = True
        return self.counters[counter]

    def _accession_id(self) -> str:
        """A new experiment accession ID (image assessors draw from the same counter)."""
        return f"{self.site_id}_E{self._next('experiment'):05d}"

    def _update(
        self, record: Experiment | Assessor, fields: dict[str, str], date: str | None
    ) -> None:
        record.fields.update(fields)
        if date is not None:
            record.date = date
        if fields or date is not None:
            record.last_modified = now_stamp()
            self.dirty = True

    def create_project(
        self,
        id: str,
        name: str = "",
        secondary_id: str = "",
        accessibility: str = "private",
        owner: str = "admin",
    ) -> Project:
        """A new project owned by `owner`; raises `ValueError` if the ID is taken."""
        if self.project(id) is not None:
            raise ValueError(f"project {id} exists")
        project = Project(
            id=id,
            name=name or id,
            secondary_id=secondary_id or id,
            accessibility=accessibility,
            owner=owner,
            insert_date=now_stamp(),
            members={owner: "Owners"},
        )
        self.projects[id] = project
        self.dirty = True
        return project

    def add_alias(self, project: Project, alias: str) -> None:
        """Make `alias` address `project` (§1.4)."""
        project.aliases.append(alias)
        self.labels.aliases[alias] = project.id
        self.dirty = True

    def ensure_subject(
        self, project_id: str, label: str, user: str = "admin"
    ) -> tuple[Subject, bool]:
        """The subject `label` of a project, created if missing (`KeyError`: no such project)."""
        project = self.projects[project_id]
        found = self.subject(project_id, label)
        if found is not None:
            return found, False
        stamp = now_stamp()
        sid = f"{self.site_id}_S{self._next('subject'):05d}"
        subject = Subject(sid, label, project_id, stamp, user, stamp)
        self.subjects[sid] = subject
        self.labels.add(subject)
        project.subjects.append(sid)
        return subject, True

    def ensure_experiment(
        self,
        project_id: str,
        subject_label: str,
        label: str,
        xsi_type: str = "xnat:mrSessionData",
        **fields: str,
    ) -> tuple[Experiment, bool]:
        """The experiment `label` of a project (subject auto-created); fields update it."""
        date = fields.pop("date", None)
        user = fields.pop("insert_user", "admin")
        found = self.experiment(project_id, label)
        if found is not None:
            self._update(found, fields, date)
            return found, False
        subject, _ = self.ensure_subject(project_id, subject_label, user)
        stamp = now_stamp()
        eid = self._accession_id()
        experiment = Experiment(
            eid, label, project_id, subject.id, xsi_type, date or "", stamp, user, stamp, fields
        )
        self.experiments[eid] = experiment
        self.labels.add(experiment)
        subject.experiments.append(eid)
        self.projects[project_id].experiments.append(eid)
        return experiment, True

    def ensure_scan(
        self,
        experiment_id: str,
        scan_id: str,
        xsi_type: str = "xnat:mrScanData",
        type: str = "",
        series_description: str = "",
        **fields: str,
    ) -> tuple[Scan, bool]:
        """The scan `scan_id` of an experiment, created or updated (`KeyError`: no experiment)."""
        experiment = self.experiments[experiment_id]
        scan = experiment.scans.get(scan_id)
        created = scan is None
        if scan is None:
            scan = Scan(scan_id, self._next("scan"), experiment_id, xsi_type)
            scan.insert_date = now_stamp()
            experiment.scans[scan_id] = scan
        scan.type = type or scan.type
        scan.series_description = series_description or scan.series_description
        scan.quality = fields.pop("quality", scan.quality)
        scan.note = fields.pop("note", scan.note)
        scan.fields.update(fields)
        self.dirty = True
        return scan, created

    def ensure_assessor(
        self,
        experiment: Experiment,
        label: str,
        xsi_type: str = "xnat:qcAssessmentData",
        **fields: str,
    ) -> tuple[Assessor, bool]:
        """The assessor `label` (or ID) of a session, created if missing; fields update it."""
        date = fields.pop("date", None)
        user = fields.pop("insert_user", "admin")
        found = self.assessor(experiment, label)
        if found is not None:
            self._update(found, fields, date)
            return found, False
        stamp, aid = now_stamp(), self._accession_id()
        assessor = Assessor(aid, label, experiment.id, experiment.project, xsi_type, date or "")
        assessor.insert_date, assessor.insert_user, assessor.last_modified = stamp, user, stamp
        assessor.fields = fields
        experiment.assessors[aid] = assessor
        return assessor, True

    def ensure_resource(
        self, owner: Owner, label: str, format: str = "", content: str = ""
    ) -> tuple[Resource, bool]:
        """The resource `label` of an owner, created as an `xnat:resourceCatalog` if missing."""
        found = owner.resources.get(label)
        if found is not None:
            return found, False
        resource = Resource(self._next("resource"), label, "project", "", format=format)
        resource.content = content
        resource.insert_date = now_stamp()
        self._place(resource, owner)
        owner.resources[label] = resource
        self.resources[resource.id] = resource
        return resource, True

    def _place(self, resource: Resource, owner: Owner) -> None:
        if isinstance(owner, Project):
            resource.level, resource.project = "project", owner.id
        elif isinstance(owner, Subject):
            resource.level, resource.project, resource.subject = "subject", owner.project, owner.id
        elif isinstance(owner, Experiment):
            resource.level, resource.project = "experiment", owner.project
            resource.experiment = owner.id
        elif isinstance(owner, Assessor):
            resource.level, resource.project = "assessor", owner.project
            resource.experiment, resource.assessor = owner.session, owner.id
        elif isinstance(owner, Inputs):
            resource.level = "assessor_in" if owner.kind == "assessor" else "recon_in"
            resource.project = self.experiments[owner.session].project
            resource.experiment = owner.session
            if owner.kind == "assessor":
                resource.assessor = owner.of
            else:
                resource.reconstruction = owner.of
        elif isinstance(owner, Reconstruction):
            resource.level, resource.reconstruction = "recon", owner.id
            resource.project = self.experiments[owner.session].project
            resource.experiment = owner.session
        else:
            experiment = self.experiments[owner.experiment]
            resource.level, resource.project = "scan", experiment.project
            resource.experiment, resource.scan = experiment.id, owner.id

    def add_file(
        self,
        resource: Resource,
        relpath: str,
        data: bytes | pathlib.Path,
        *,
        overwrite: bool = False,
        format: str = "",
        content: str = "",
        tags: str = "",
        digest: str | None = None,
    ) -> bool:
        """Store bytes (or move a file) as `relpath`; False if it exists and not `overwrite`.

        `digest` may be given when the caller already hashed the bytes; with `checksums` off
        the entry has none (""). On a duplicate a Path argument is left where it is.
        """
        relpath = safe_relpath(relpath)
        if relpath in resource.files and not overwrite:
            return False
        stat, digest = self.blobs.put(resource, relpath, data, digest)
        digest = digest if self.checksums else ""
        entry = FileEntry(relpath, stat.st_size, digest, stat.st_mtime, format, content, tags)
        resource.files[relpath] = entry
        self.dirty = True
        return True

    def _shareables(self) -> list[Subject | Experiment]:
        return [*self.subjects.values(), *self.experiments.values()]

    # --- persistence ---------------------------------------------------------------------

    def index(self) -> None:
        """Rebuild the label and alias indexes from the records (after loading)."""
        self.labels.rebuild(self.projects.values(), self._shareables())

    def save(self) -> None:
        """Write `metadata.json` atomically if anything changed since the last save."""
        if not self.dirty:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{METADATA}.{os.getpid()}.{time.monotonic_ns()}"
        tmp.write_text(json.dumps(persist.dump(self)), "utf-8")
        os.replace(tmp, self.root / METADATA)
        self.dirty = False
