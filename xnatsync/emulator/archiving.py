"""Move a built prearchive session into the archive, through the store's public API.

No aiohttp: the routes call `archive_session` and turn `ArchiveError` into an HTTP status.

Invariants:
* Nothing is changed when the archive would conflict: all checks run before the first write.
* The archived session has one scan per prearchive scan (ID = SeriesNumber, type = series
  description) and one `DICOM` resource per scan holding the instances under their prearchive
  names, each with its MD5 digest (§8.4.7).
* `overwrite`: `none` refuses an existing session, `append` merges but refuses a same-named file
  with different bytes, `delete` merges and replaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from xnatsync.emulator.dicom_import import UNASSIGNED
from xnatsync.emulator.prearchive import BUSY, Prearchive, PrearcSession
from xnatsync.emulator.store import Store

OVERWRITE_MODES = ("none", "append", "delete")


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed `dest`: archive or prearchive, with whatever path parts were given."""

    archive: bool
    project: str | None = None
    subject: str | None = None
    session: str | None = None
    timestamp: str | None = None


def parse_dest(dest: str) -> Destination | None:
    """`/archive[/projects/P[/subjects/S[/experiments/E]]]` or `/prearchive[/projects/P[/TS/F]]`.

    None if the text is not one of those forms ("Parameter dest format error").
    """
    path = dest.strip()
    for prefix in ("/data", "/REST"):
        if path.startswith(prefix + "/"):
            path = path[len(prefix) :]
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("archive", "prearchive"):
        return None
    rest = parts[1:]
    if rest and rest[0] != "projects":
        return None
    if parts[0] == "archive":
        names = rest[1::2]
        keys = rest[2::2]
        if len(rest) % 2 or len(rest) > 6 or keys != ["subjects", "experiments"][: len(keys)]:
            return None
        padded = [*names, None, None, None]
        return Destination(True, padded[0], padded[1], padded[2])
    if len(rest) not in (0, 2, 4):
        return None
    if len(rest) == 4:
        return Destination(False, rest[1], None, rest[3], rest[2])
    return Destination(False, rest[1] if rest else None)


class ArchiveError(Exception):
    """Archiving refused; `status` is the HTTP status XNAT answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    """Where a session is archived: project ID, subject label, session label."""

    project: str
    subject: str
    label: str

    @property
    def uri(self) -> str:
        return (
            f"/data/archive/projects/{self.project}/subjects/{self.subject}"
            f"/experiments/{self.label}"
        )


def resolve_target(
    store: Store,
    session: PrearcSession,
    project: str | None = None,
    subject: str | None = None,
    label: str | None = None,
) -> Target:
    """The archive destination, overrides first; ArchiveError if the project is unknown."""
    project_id = project or session.project
    if project_id == UNASSIGNED:
        raise ArchiveError(400, "Unable to identify project for unassigned session.")
    record = store.project(project_id)
    if record is None:
        raise ArchiveError(400, f"Invalid project: {project_id}")
    return Target(record.id, subject or session.subject, label or session.folder)


def _check(
    store: Store, prearchive: Prearchive, session: PrearcSession, target: Target, overwrite: str
) -> None:
    if overwrite not in OVERWRITE_MODES:
        raise ArchiveError(400, f"Invalid overwrite value: {overwrite}")
    if session.status in BUSY:
        raise ArchiveError(403, "Operation already in progress on this prearchive entry.")
    if not session.scans:
        raise ArchiveError(500, "FAILED: session contains no scans")
    existing = store.experiment(target.project, target.label)
    if existing is None:
        return
    if overwrite == "none":
        raise ArchiveError(409, "Session already exists, retry with overwrite enabled")
    owner = store.subjects.get(existing.subject)
    if owner is not None and owner.label != target.subject:
        raise ArchiveError(409, f"Session {target.label} already belongs to subject {owner.label}")
    if existing.xsi_type != session.xsi_type:
        raise ArchiveError(409, f"Session {target.label} is a {existing.xsi_type}")
    if overwrite == "delete":
        return
    for scan in session.scans.values():
        archived = existing.scans.get(scan.id)
        resource = archived.resources.get("DICOM") if archived is not None else None
        if resource is None:
            continue
        for name, entry in scan.files.items():
            old = resource.files.get(name)
            if old is not None and old.digest != entry.digest:
                raise ArchiveError(409, f"Conflicting file {name} in scan {scan.id}")


def archive_session(
    store: Store,
    prearchive: Prearchive,
    session: PrearcSession,
    target: Target,
    *,
    overwrite: str = "none",
    user: str = "admin",
) -> str:
    """Archive `session` as `target`, remove it from the prearchive, return the archive URI."""
    _check(store, prearchive, session, target, overwrite)
    prearchive.touch(session, "ARCHIVING")
    fields = {
        "UID": session.study_uid,
        "time": session.scan_time,
        "dcmPatientName": session.patient_name,
        "dcmPatientId": session.patient_id,
        "dcmAccessionNumber": session.accession_number,
        "modality": next(iter(session.scans.values())).modality,
        "insert_user": user,
    }
    if session.scan_date:
        fields["date"] = session.scan_date
    experiment, _ = store.ensure_experiment(
        target.project,
        target.subject,
        target.label,
        session.xsi_type,
        **{k: v for k, v in fields.items() if v},
    )
    for scan in session.scans.values():
        record, _ = store.ensure_scan(
            experiment.id,
            scan.id,
            scan.xsi_type,
            type=scan.series_description,
            series_description=scan.series_description,
            UID=scan.series_uid,
            modality=scan.modality,
            frames=str(len(scan.files)),
        )
        resource, _ = store.ensure_resource(record, "DICOM", format="DICOM", content="RAW")
        for name, entry in scan.files.items():
            path = prearchive.file_path(session, scan.id, name)
            store.add_file(resource, name, path, overwrite=True, digest=entry.digest)
    store.save()
    prearchive.remove(session)
    return target.uri
