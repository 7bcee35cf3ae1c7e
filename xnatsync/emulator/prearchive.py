"""The emulator's prearchive: sessions received by the import service, before archiving.

State lives in memory (one `PrearcSession` per session) with the DICOM bytes on disk at
`{root}/{project}/{timestamp}/{folder}/SCANS/{scan}/DICOM/{name}`, the layout XNAT uses. No
aiohttp here; the importer routes drive it.

Invariants:
* A session is identified by its URL `/prearchive/projects/{project}/{timestamp}/{folder}`; the
  timestamp (`yyyyMMdd_HHmmssSSS`, from the injected clock, or the one a `dest` names) is unique
  per project and folder. Its session label (`name`) is the folder unless a `dest` named the
  folder and the request the label.
* Sessions are keyed for merging by (project, StudyInstanceUID, folder) — §11.2: the same study
  under different labels gives different sessions.
* A file name is unique within a scan; re-sending identical bytes is a no-op, different bytes
  under the same name are a conflict unless overwriting is allowed.
* Status values are XNAT's (§5.2); a session in a BUSY status refuses other operations.
* `idle_build` is XNAT's "Session Idle Time" (`sessionXmlRebuilderInterval`, 5 minutes by
  default): RECEIVING sessions idle that long are due for building (`due_for_build`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from xnatsync.emulator.dicom_import import DicomHeader, iso_date, iso_time, scan_id, scan_xsi_type
from xnatsync.emulator.dicom_import import session_xsi_type as _session_type

RECEIVING = "RECEIVING"
READY = "READY"
BUSY = frozenset(
    {
        "BUILDING",
        "ARCHIVING",
        "DELETING",
        "MOVING",
        "SEPARATING",
        "QUEUED_ARCHIVING",
        "QUEUED_BUILDING",
        "QUEUED_DELETING",
        "QUEUED_MOVING",
        "QUEUED_SEPARATING",
        "_ARCHIVING",
        "_BUILDING",
        "_DELETING",
        "_MOVING",
        "_SEPARATING",
    }
)
STATUSES = BUSY | {
    RECEIVING,
    READY,
    "CONFLICT",
    "ERROR",
    "RECEIVING_INTERRUPT",
    "_CONFLICT",
    "_RECEIVING",
    "_RECEIVING_INTERRUPT",
}
AUTOARCHIVE_NAMES = {0: "Manual", 4: "AutoArchive", 5: "AutoArchiveOverwrite"}


def autoarchive_name(code: int) -> str:
    """The prearchive row's `autoarchive` for a project prearchive code (§5.4)."""
    return AUTOARCHIVE_NAMES.get(code, "AutoArchive" if code >= 4 else "Manual")


class Conflict(ValueError):
    """An upload or operation that clashes with what is already there."""


def java_timestamp(when: dt.datetime) -> str:
    """Java `Timestamp.toString()` at millisecond precision: trailing zeros trimmed, ≥ 1 digit."""
    millis = f"{when.microsecond // 1000:03d}".rstrip("0") or "0"
    return when.strftime("%Y-%m-%d %H:%M:%S.") + millis


def prearc_timestamp(when: dt.datetime) -> str:
    """`yyyyMMdd_HHmmssSSS`."""
    return when.strftime("%Y%m%d_%H%M%S") + f"{when.microsecond // 1000:03d}"


@dataclass(slots=True)
class PrearcFile:
    """One stored instance."""

    name: str
    size: int
    digest: str


@dataclass(slots=True)
class PrearcScan:
    """One series of a prearchive session, keyed by SeriesNumber."""

    id: str
    series_description: str
    modality: str
    series_uid: str
    files: dict[str, PrearcFile] = field(default_factory=dict)

    @property
    def xsi_type(self) -> str:
        return scan_xsi_type(self.modality)

    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())


@dataclass(slots=True)
class PrearcSession:
    """One prearchive session and the request options it was received with."""

    project: str
    timestamp: str
    folder: str
    subject: str
    study_uid: str
    uploaded: dt.datetime
    lastmod: dt.datetime
    status: str = RECEIVING
    scan_date: str = ""  # YYYY-MM-DD
    scan_time: str = ""  # HH:MM:SS
    autoarchive: str = ""
    prevent_anon: bool = False
    prevent_auto_commit: bool = False
    source: str = ""
    visit: str = ""
    protocol: str = ""
    timezone: str = ""
    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    name: str = ""  # the session label when it differs from the folder
    scans: dict[str, PrearcScan] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The session label it is archived under by default (the row's `name`)."""
        return self.name or self.folder

    @property
    def url(self) -> str:
        """The listing's `url` (no `/data`)."""
        return f"/prearchive/projects/{self.project}/{self.timestamp}/{self.folder}"

    @property
    def uri(self) -> str:
        """The importer's answer: the URL with `/data`."""
        return "/data" + self.url

    @property
    def xsi_type(self) -> str:
        return _session_type({s.modality for s in self.scans.values()})

    def row(self) -> dict[str, str]:
        """A prearchive listing row with XNAT's exact keys (§5.2)."""
        scan_date = f"{self.scan_date} 00:00:00.000" if self.scan_date else ""
        return {
            "project": self.project,
            "timestamp": self.timestamp,
            "lastmod": java_timestamp(self.lastmod),
            "uploaded": java_timestamp(self.uploaded),
            "scan_date": scan_date,
            "scan_time": self.scan_time,
            "subject": self.subject,
            "folderName": self.folder,
            "name": self.label,
            "tag": self.study_uid,
            "status": self.status,
            "url": self.url,
            "autoarchive": self.autoarchive,
            "prevent_anon": "true" if self.prevent_anon else "false",
            "prevent_auto_commit": "true" if self.prevent_auto_commit else "false",
            "SOURCE": self.source,
            "VISIT": self.visit,
            "PROTOCOL": self.protocol,
            "TIMEZONE": self.timezone,
        }


class Prearchive:
    """All prearchive sessions of one emulator."""

    def __init__(
        self, clock: Callable[[], dt.datetime] = dt.datetime.now, idle_seconds: float = 300.0
    ) -> None:
        self.clock = clock
        self.root: Path | None = None
        self.sessions: dict[str, PrearcSession] = {}
        # XNAT's rebuilder builds RECEIVING sessions idle this long; None disables it.
        self.idle_build: dt.timedelta | None = dt.timedelta(seconds=idle_seconds)

    def attach(self, root: Path) -> None:
        """Keep session files under `root` (done on first use, once the store exists)."""
        if self.root is None:
            self.root = root

    # --- lookups -------------------------------------------------------------------------

    def get(self, project: str, timestamp: str, folder: str) -> PrearcSession | None:
        return self.sessions.get(f"/prearchive/projects/{project}/{timestamp}/{folder}")

    def by_src(self, src: str) -> PrearcSession | None:
        """A session by `/data/prearchive/…` or `/prearchive/…` path (§11.4)."""
        path = src.strip().rstrip("/")
        for prefix in ("/data/archive", "/data", "/REST"):
            if path.startswith(prefix + "/prearchive/"):
                path = path[len(prefix) :]
                break
        return self.sessions.get(path)

    def find(self, project: str, study_uid: str, folder: str) -> PrearcSession | None:
        """The session an upload of this study with this label merges into (XNAT matches on
        project, StudyInstanceUID and session label, whatever the session's status)."""
        for session in self.sessions.values():
            if (session.project, session.study_uid, session.label) == (project, study_uid, folder):
                return session
        return None

    def listing(self, projects: Iterable[str] | None) -> list[PrearcSession]:
        """Sessions of the given projects (all if None), oldest first."""
        wanted = None if projects is None else set(projects)
        found = [s for s in self.sessions.values() if wanted is None or s.project in wanted]
        return sorted(found, key=lambda s: (s.timestamp, s.project, s.folder))

    def directory(self, session: PrearcSession) -> Path:
        if self.root is None:
            raise RuntimeError("prearchive not attached to a store root")
        return self.root / session.project / session.timestamp / session.folder

    def file_path(self, session: PrearcSession, scan: str, name: str) -> Path:
        return self.directory(session) / "SCANS" / scan / "DICOM" / name

    # --- mutation ------------------------------------------------------------------------

    def create(
        self,
        project: str,
        folder: str,
        subject: str,
        header: DicomHeader,
        autoarchive: str = "",
        *,
        timestamp: str | None = None,
        name: str = "",
    ) -> PrearcSession:
        """A new RECEIVING session, at `timestamp` if given (a `dest` naming a new session),
        else with a fresh timestamp unique for (project, folder)."""
        now = self.clock()
        stamp = timestamp or prearc_timestamp(now)
        while timestamp is None and self.get(project, stamp, folder) is not None:
            now += dt.timedelta(milliseconds=1)
            stamp = prearc_timestamp(now)
        session = PrearcSession(
            project=project,
            timestamp=stamp,
            folder=folder,
            subject=subject,
            study_uid=header.study_uid,
            uploaded=now,
            lastmod=now,
            scan_date=iso_date(header.study_date),
            scan_time=iso_time(header.study_time),
            autoarchive=autoarchive,
            patient_name=header.patient_name,
            patient_id=header.patient_id,
            accession_number=header.accession_number,
            name="" if name == folder else name,
        )
        self.sessions[session.url] = session
        return session

    def add_instance(
        self,
        session: PrearcSession,
        header: DicomHeader,
        name: str,
        staged: Path,
        *,
        overwrite: bool,
    ) -> None:
        """Move a staged instance into the session (Conflict on a different same-named file)."""
        if session.status in BUSY:
            raise Conflict("session document locked")
        digest = _md5(staged)
        sid = scan_id(header)
        scan = session.scans.get(sid)
        if scan is None:
            scan = PrearcScan(sid, header.series_description, header.modality, header.series_uid)
        existing = scan.files.get(name)
        if existing is not None and existing.digest != digest and not overwrite:
            raise Conflict(f"Session already contains a different file named {name}")
        target = self.file_path(session, sid, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        session.scans[sid] = scan
        scan.files[name] = PrearcFile(name, target.stat().st_size, digest)
        session.status = RECEIVING
        session.lastmod = self.clock()

    def touch(self, session: PrearcSession, status: str) -> None:
        """Set a status and bump `lastmod`."""
        session.status = status
        session.lastmod = self.clock()

    def remove(self, session: PrearcSession) -> None:
        """Forget a session and delete its files."""
        self.sessions.pop(session.url, None)
        if self.root is not None:
            shutil.rmtree(self.directory(session), ignore_errors=True)

    def move(self, session: PrearcSession, project: str, autoarchive: str = "") -> PrearcSession:
        """Move a session to another project's prearchive; returns it under its new URL."""
        if session.status in BUSY:
            raise Conflict("Operation already in progress on this prearchive entry.")
        old_dir = self.directory(session)
        self.sessions.pop(session.url, None)
        session.project = project
        while session.url in self.sessions:
            session.timestamp = prearc_timestamp(
                dt.datetime.strptime(session.timestamp, "%Y%m%d_%H%M%S%f")
                + dt.timedelta(milliseconds=1)
            )
        new_dir = self.directory(session)
        new_dir.parent.mkdir(parents=True, exist_ok=True)
        if old_dir.exists():
            os.replace(old_dir, new_dir)
        session.autoarchive = autoarchive
        session.lastmod = self.clock()
        self.sessions[session.url] = session
        return session

    def due_for_build(self, idle: dt.timedelta) -> list[PrearcSession]:
        """RECEIVING sessions idle for `idle` that XNAT's rebuilder would build (§5.2)."""
        now = self.clock()
        return [
            s
            for s in self.sessions.values()
            if s.status == RECEIVING
            and now - s.lastmod >= idle
            and not s.prevent_auto_commit
            and s.source != "uploader"
        ]


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
