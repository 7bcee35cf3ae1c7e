"""Move a built prearchive session into the archive, through the store's public API.

No aiohttp: the routes call `archive_session` and turn `ArchiveError` into an HTTP status.

Invariants:
* Nothing is changed when the archive would conflict: all checks run before the first write.
* The archived session has one scan per prearchive scan (ID = SeriesNumber, type = series
  description) and one `DICOM` resource per scan holding the instances under their prearchive
  names, each with its MD5 digest (§8.4.7).
* `overwrite`: `none` refuses an existing session; `append` merges but refuses any file the
  session already holds under the same name in the same scan ("Duplicate DICOM file uploaded.",
  TestImport.testDataDuplicateScanFilesOverwriteTDeleteF) unless `overwrite_files` is set;
  `delete` merges and replaces.
* Merging into an existing session keeps what it has (XNAT's merge copies the existing session's
  values over the new one): its date and other fields, its resources, and the type and
  description of scans it already has; only fields it lacks are filled in
  (TestImport.testDataProjectExperimentOldRes).
* `Target.session_fields`/`scan_fields` (the archive service's XML-path parameters) are applied
  last and win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xnatsync.emulator.dicom_import import UNASSIGNED
from xnatsync.emulator.prearchive import BUSY, Prearchive, PrearcSession
from xnatsync.emulator.store import Store

OVERWRITE_MODES = ("none", "append", "delete")
# XNAT's messages (PrearcSessionArchiver), shared by archiving and its validator
PRE_EXISTS = "Session already exists, retry with overwrite enabled"
SUBJECT_MOD = "Invalid modification of session subject via archive process."
MODALITY_MOD = (
    "Invalid modification of session modality via archive process.  "
    "Data may require a manual merge."
)
UID_MOD = "Invalid modification of session UID via archive process."


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
    session_fields: Mapping[str, str] = field(default_factory=dict)
    scan_fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # by scan ID

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
    """The archive destination, overrides first; ArchiveError if the project is unknown.

    A subject or session override may name an existing record by accession ID; the target then
    carries its label."""
    project_id = project or session.project
    if project_id == UNASSIGNED:
        raise ArchiveError(400, "Unable to identify project for unassigned session.")
    record = store.project(project_id)
    if record is None:
        raise ArchiveError(400, f"Invalid project: {project_id}")
    subject_label = subject or session.subject
    found = store.subject(record.id, subject_label)
    if found is not None:
        subject_label = found.label
    session_label = label or session.label
    existing = store.experiment(record.id, session_label)
    if existing is not None:
        session_label = existing.label
    return Target(record.id, subject_label, session_label)


def _check(
    store: Store,
    session: PrearcSession,
    target: Target,
    overwrite: str,
    overwrite_files: bool,
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
        raise ArchiveError(409, PRE_EXISTS)
    if existing.xsi_type != session.xsi_type:  # XNAT checks the modality first
        raise ArchiveError(409, MODALITY_MOD)
    owner = store.subjects.get(existing.subject)
    if owner is not None and owner.label != target.subject:
        raise ArchiveError(
            409, f"{SUBJECT_MOD}: {existing.label} Already Exists for another Subject"
        )
    if overwrite == "delete" or overwrite_files:
        return
    for scan in session.scans.values():
        archived = existing.scans.get(scan.id)
        resource = archived.resources.get("DICOM") if archived is not None else None
        if resource is not None and any(name in resource.files for name in scan.files):
            raise ArchiveError(409, "Duplicate DICOM file uploaded.")


def _session_fields(session: PrearcSession, user: str) -> dict[str, str]:
    fields = {
        "UID": session.study_uid,
        "time": session.scan_time,
        "dcmPatientName": session.patient_name,
        "dcmPatientId": session.patient_id,
        "dcmAccessionNumber": session.accession_number,
        "modality": next(iter(session.scans.values())).modality,
        "insert_user": user,
        "date": session.scan_date,
    }
    return {k: v for k, v in fields.items() if v}


def archive_session(
    store: Store,
    prearchive: Prearchive,
    session: PrearcSession,
    target: Target,
    *,
    overwrite: str = "none",
    overwrite_files: bool = False,
    user: str = "admin",
) -> str:
    """Archive `session` as `target`, remove it from the prearchive, return the archive URI."""
    _check(store, session, target, overwrite, overwrite_files)
    prearchive.touch(session, "ARCHIVING")
    fields = _session_fields(session, user)
    existing = store.experiment(target.project, target.label)
    if existing is not None:  # the existing session's values win; fill only what it lacks
        have = {**existing.fields, "date": existing.date, "insert_user": existing.insert_user}
        fields = {k: v for k, v in fields.items() if not have.get(k)}
    fields.update(target.session_fields)
    experiment, _ = store.ensure_experiment(
        target.project, target.subject, target.label, session.xsi_type, **fields
    )
    for scan in session.scans.values():
        overrides = dict(target.scan_fields.get(scan.id, {}))
        new = {} if scan.id in experiment.scans else {
            "type": scan.series_description,
            "series_description": scan.series_description,
            "UID": scan.series_uid,
            "modality": scan.modality,
        }  # fmt: skip
        record, _ = store.ensure_scan(
            experiment.id,
            scan.id,
            scan.xsi_type,
            **{**new, **overrides},
        )
        resource, _ = store.ensure_resource(record, "DICOM", format="DICOM", content="RAW")
        for name, entry in scan.files.items():
            path = prearchive.file_path(session, scan.id, name)
            store.add_file(resource, name, path, overwrite=True, digest=entry.digest)
        record.fields["frames"] = str(len(resource.files))
    store.save()
    prearchive.remove(session)
    return target.uri


def validate_archive(
    store: Store, session: PrearcSession, target: Target | None
) -> list[tuple[int, str, str]]:
    """What archiving `session` as `target` would run into, as XNAT's validator reports it:
    (code, FAIL|WARN|CONFLICT, message) sorted by code; empty when it would go through.
    `target` None means no destination project could be identified."""
    if target is None:
        return [(6, "FAIL", "unable to identify destination project")]
    notices: list[tuple[int, str, str]] = []
    existing = store.experiment(target.project, target.label)
    if existing is not None:
        notices.append((1, "CONFLICT", PRE_EXISTS))
        owner = store.subjects.get(existing.subject)
        if owner is not None and owner.label != target.subject:
            notices.append(
                (4, "FAIL", f"{SUBJECT_MOD}: {existing.label} Already Exists for another Subject")
            )
        old_uid = existing.fields.get("UID", "")
        if old_uid and session.study_uid and old_uid != session.study_uid:
            notices.append((5, "CONFLICT", UID_MOD))
        if existing.xsi_type != session.xsi_type:
            notices.append((19, "FAIL", MODALITY_MOD))
        for scan in session.scans.values():
            match = existing.scans.get(scan.id)
            if match is not None:
                notices.append(
                    _scan_notice(scan.id, match.fields.get("UID", "") == scan.series_uid)
                )
    return sorted(notices, key=lambda n: n[0])


def _scan_notice(scan_id: str, same_uid: bool) -> tuple[int, str, str]:
    if same_uid:
        return (
            16,
            "CONFLICT",
            f"Session already contains a scan ({scan_id}) with the same UID and number.",
        )
    return (
        17,
        "CONFLICT",
        f"Session already contains a scan ({scan_id}) with the same number, but a different UID."
        " - New scan will be renamed during archive.",
    )
