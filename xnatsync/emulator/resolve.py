"""From a request path to archive records, with XNAT's permission answers (§1.4, §2.4, §11.1).

Reads of anything in a project the user cannot read → 404 (existence is hidden). Writes by a
user who cannot edit → 403, except on an existing subject or session the user cannot even read,
which → 404. Projects match by ID or alias, subjects and experiments by label (with a project in
the path) or accession ID, scans by ID, type, `ALL`/`*` or comma lists, assessors by accession ID
or by label within their session (with or without a project in the path; XNAT needs one for
labels), reconstructions by ID within their session, resources by label or numeric id. An
assessor or reconstruction is read and written with its session's permissions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from xnatsync.emulator.common import can_edit, can_read, can_see, fail, store_of, user_of
from xnatsync.emulator.records import (
    Assessor,
    Experiment,
    Owner,
    Project,
    Reconstruction,
    Resource,
    Scan,
    Subject,
)
from xnatsync.emulator.settings import User
from xnatsync.emulator.store import Store


@dataclass(slots=True)
class Ctx:
    """The records a path names; `scans` is None when no scans segment is in the path;
    `assessor_type` and `recon_type` are `in` or `out` when the path names that side of an
    assessor's or a reconstruction's resources explicitly."""

    project: Project
    subject: Subject | None = None
    experiment: Experiment | None = None
    scans: list[Scan] | None = None
    subject_in_path: bool = False
    assessor: Assessor | None = None
    assessor_type: str = ""
    reconstruction: Reconstruction | None = None
    recon_type: str = ""

    def owner(self) -> Owner:
        """The single innermost record: the assessor or the reconstruction (their IN side for
        `…/in`), else the first selected scan, else the session, subject or project."""
        if self.assessor is not None:
            return self.assessor.inputs if self.assessor_type == "in" else self.assessor
        if self.reconstruction is not None:
            recon = self.reconstruction
            return recon.inputs if self.recon_type == "in" else recon
        if self.scans:
            return self.scans[0]
        return self.experiment or self.subject or self.project


def project_of(request: web.Request, *, write: bool = False) -> Project:
    """The project named by `{project}`: 404 if unknown or unreadable, 403 on a refused write."""
    user = user_of(request)
    project = store_of(request).project(request.match_info["project"])
    if project is None or not can_see(user, project):
        fail(404, f"Unable to identify project {request.match_info['project']}")
    if write and not can_edit(user, project):
        fail(403, "Specified user account has insufficient privileges for projects.")
    return project


def resolve(request: web.Request, *, write: bool = False, children: bool = True) -> Ctx:
    """Resolve `{project}`, `{subject}`, `{experiment}` and (if `children`) `{scans}` and
    `{assessor}` (404 if no assessor matches)."""
    store, user = store_of(request), user_of(request)
    info = request.match_info
    project = store.project(info["project"]) if "project" in info else None
    if "project" in info and (project is None or not (can_read(user, project) or write)):
        fail(404, f"Unable to identify project {info['project']}")
    subject = None
    if "subject" in info:
        key = info["subject"]
        subject = store.subject(project.id, key) if project else store.subjects.get(key)
        if subject is None:
            fail(404, f"Unable to identify subject {key}")
        project = project or _home(store, user, subject)
    experiment = None
    if "experiment" in info:
        key = info["experiment"]
        experiment = store.experiment(project.id if project else None, key)
        if experiment is None or (subject is not None and experiment.subject != subject.id):
            fail(404, "Unable to find the specified experiment.")
        project = project or _home(store, user, experiment)
    if project is None:
        fail(404, "Unable to identify project")
    _check(user, project, write, existing=subject is not None or experiment is not None)
    record = experiment or subject
    if write and record is not None and record.project != project.id:
        # shared data is read-only where it is shared: writes need the primary project
        _check(user, store.projects[record.project], write, existing=True)
    ctx = Ctx(project, subject, experiment, subject_in_path="subject" in info and "project" in info)
    if children and experiment is not None:
        _children(store, ctx, experiment, info)
    return ctx


def _children(store: Store, ctx: Ctx, experiment: Experiment, info: Mapping[str, str]) -> None:
    if "scans" in info:
        ctx.scans = select_scans(experiment, info["scans"])
    if "assessor" in info:
        ctx.assessor = store.assessor(experiment, info["assessor"])
        if ctx.assessor is None:
            fail(404, "Unable to find the specified experiment.")
        ctx.assessor_type = info.get("assessor_type", "")
    if "reconstruction" in info:
        ctx.reconstruction = experiment.reconstructions.get(info["reconstruction"])
        if ctx.reconstruction is None:
            fail(404, "Unable to find the specified reconstruction.")
        ctx.recon_type = info.get("recon_type", "")


def _home(store: Store, user: User, record: Subject | Experiment) -> Project:
    """The project a record is read through when no project is in the path: its primary one,
    or a project it is shared into that the user can read."""
    primary = store.projects[record.project]
    if can_read(user, primary):
        return primary
    readable = (store.projects[p] for p in record.shares if can_read(user, store.projects[p]))
    return next(readable, primary)


def _check(user: User, project: Project, write: bool, *, existing: bool) -> None:
    if not can_read(user, project) and (existing or not write):
        fail(404, f"Unable to identify project {project.id}")
    if write and not can_edit(user, project):
        fail(403, "Specified user account has insufficient privileges for this operation.")


def select_scans(experiment: Experiment, spec: str) -> list[Scan]:
    """Scans by ID, type (`[SLASH]`, `[COMMA]` escapes; `NULL` = no type), `ALL`/`*`, lists."""
    chosen: dict[str, Scan] = {}
    for token in spec.split(","):
        if token in ("ALL", "*"):
            chosen.update(experiment.scans)
            continue
        if token in experiment.scans:
            chosen[token] = experiment.scans[token]
            continue
        wanted = "" if token == "NULL" else token.replace("[SLASH]", "/").replace("[COMMA]", ",")
        chosen.update({s.id: s for s in experiment.scans.values() if s.type == wanted})
    return [s for s in experiment.scans.values() if s.id in chosen]


def select_resources(owners: list[Owner], spec: str) -> list[Resource]:
    """Resources of the owners by label or numeric id (comma list; `NULL` = unlabeled)."""
    found: list[Resource] = []
    tokens = spec.split(",")
    for owner in owners:
        for resource in owner.resources.values():
            keys = {resource.label or "NULL", str(resource.id)}
            if keys.intersection(tokens):
                found.append(resource)
    return found
