"""Removal, relabelling and sharing of archive records, and which record owns a resource: the
half of `store.Store` that changes or reads existing records (mixed into it; the store owns the
state declared here).

Invariants: removing a record removes everything below it (scans, assessors, reconstructions,
their OUT and IN resources, catalogs and bytes) and its label index entries; every change marks
the store dirty.
"""

from __future__ import annotations

from xnatsync.emulator.blobs import Blobs
from xnatsync.emulator.labels import Labels
from xnatsync.emulator.records import (
    Assessor,
    Experiment,
    Owner,
    Project,
    Reconstruction,
    Resource,
    Scan,
    Subject,
    now_stamp,
)


class Edits:
    """Removal, relabelling, sharing and resource ownership over the store's records."""

    projects: dict[str, Project]
    subjects: dict[str, Subject]
    experiments: dict[str, Experiment]
    resources: dict[int, Resource]
    labels: Labels
    blobs: Blobs
    dirty: bool

    def owner_of(self, resource: Resource) -> Owner:
        """The project, subject, experiment, scan or assessor a resource belongs to."""
        if resource.level == "project":
            return self.projects[resource.project]
        if resource.level == "subject":
            return self.subjects[resource.subject]
        experiment = self.experiments[resource.experiment]
        if resource.level == "scan":
            return experiment.scans[resource.scan]
        if resource.level in ("assessor", "assessor_in"):
            assessor = experiment.assessors[resource.assessor]
            return assessor if resource.level == "assessor" else assessor.inputs
        if resource.level in ("recon", "recon_in"):
            recon = experiment.reconstructions[resource.reconstruction]
            return recon if resource.level == "recon" else recon.inputs
        return experiment

    # --- removal and relabelling ---------------------------------------------------------

    def remove_files(self, resource: Resource, relpaths: list[str]) -> None:
        """Drop catalog entries and their bytes."""
        for relpath in relpaths:
            resource.files.pop(relpath, None)
            self.blobs.remove(resource, relpath)
        self.dirty = True

    def delete_resource(self, resource: Resource) -> None:
        """Remove a resource, its catalog and its bytes."""
        self.owner_of(resource).resources.pop(resource.label, None)
        self.resources.pop(resource.id, None)
        self.blobs.remove_resource(resource)
        self.dirty = True

    def _delete_resources(self, owner: Owner) -> None:
        for resource in list(owner.resources.values()):
            self.delete_resource(resource)

    def delete_scan(self, scan: Scan) -> None:
        """Remove a scan and its resources."""
        self._delete_resources(scan)
        self.experiments[scan.experiment].scans.pop(scan.id, None)

    def delete_assessor(self, assessor: Assessor) -> None:
        """Remove an assessor and its OUT and IN resources."""
        self._delete_resources(assessor)
        self._delete_resources(assessor.inputs)
        self.experiments[assessor.session].assessors.pop(assessor.id, None)
        self.dirty = True

    def delete_reconstruction(self, recon: Reconstruction) -> None:
        """Remove a reconstruction and its OUT and IN resources."""
        self._delete_resources(recon)
        self._delete_resources(recon.inputs)
        self.experiments[recon.session].reconstructions.pop(recon.id, None)
        self.dirty = True

    def delete_experiment(self, experiment: Experiment) -> None:
        """Remove an experiment with its scans, assessors and resources."""
        for scan in list(experiment.scans.values()):
            self.delete_scan(scan)
        for assessor in list(experiment.assessors.values()):
            self.delete_assessor(assessor)
        for recon in list(experiment.reconstructions.values()):
            self.delete_reconstruction(recon)
        self._delete_resources(experiment)
        self.labels.remove(experiment)
        self.experiments.pop(experiment.id, None)
        self.subjects[experiment.subject].experiments.remove(experiment.id)
        self.projects[experiment.project].experiments.remove(experiment.id)

    def delete_subject(self, subject: Subject) -> None:
        """Remove a subject with its experiments and resources."""
        for eid in list(subject.experiments):
            self.delete_experiment(self.experiments[eid])
        self._delete_resources(subject)
        self.labels.remove(subject)
        self.subjects.pop(subject.id, None)
        self.projects[subject.project].subjects.remove(subject.id)

    def delete_project(self, project: Project) -> None:
        """Remove a project and everything in it."""
        for sid in list(project.subjects):
            self.delete_subject(self.subjects[sid])
        self._delete_resources(project)
        for sid in list(self.labels.shared_subjects.get(project.id, {})):
            self.unshare(self.subjects[sid], project.id)
        for eid in list(self.labels.shared_experiments.get(project.id, {})):
            self.unshare(self.experiments[eid], project.id)
        for alias in project.aliases:
            self.labels.aliases.pop(alias, None)
        self.projects.pop(project.id, None)
        self.dirty = True

    def log_workflow(self, experiment: Experiment) -> None:
        """A REST file upload or removal under `experiment` (its `workflow_date`)."""
        experiment.workflow_date = now_stamp()
        self.dirty = True

    def relabel(self, record: Subject | Experiment, label: str) -> None:
        """Give a subject or experiment a new label (`ValueError` if taken in its project)."""
        self.labels.relabel(record, label)
        record.last_modified = now_stamp()
        self.dirty = True

    # --- sharing (xnat-api §1.4) -----------------------------------------------------------

    def share(self, record: Subject | Experiment, project: Project, label: str = "") -> None:
        """Share a subject or experiment into `project` (see `Labels.share`)."""
        self.labels.share(record, project, label)
        self.dirty = True

    def unshare(self, record: Subject | Experiment, project_id: str) -> None:
        """Take a record out of a project it is shared into (`KeyError` if it is not)."""
        self.labels.unshare(record, project_id)
        self.dirty = True
