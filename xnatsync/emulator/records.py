"""The emulator's archive records: project → subject → experiment → scan → resource → file,
and image assessors (derived data) and reconstructions of an experiment, each with its OUT and
IN resources.

Plain mutable dataclasses owned by `store.Store`, which keeps the indexes consistent; nothing
here does I/O. Timestamps are strings in XNAT's Java `Timestamp.toString()` form.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


def now_stamp(when: dt.datetime | None = None) -> str:
    """`YYYY-MM-DD HH:MM:SS.f…` with trailing zeros trimmed but at least one fractional digit."""
    when = when or dt.datetime.now()
    frac = f"{when.microsecond:06d}".rstrip("0") or "0"
    return when.strftime("%Y-%m-%d %H:%M:%S.") + frac


@dataclass(slots=True)
class FileEntry:
    """One catalog entry. `relpath` is relative to the resource root, `/`-separated."""

    relpath: str
    size: int
    digest: str
    mtime: float
    format: str = ""
    content: str = ""
    tags: str = ""


@dataclass(slots=True)
class Resource:
    """An `xnat:resourceCatalog`; `level` says which of the owner ids are meaningful."""

    id: int
    label: str
    # project | subject | experiment | scan | assessor | assessor_in | recon | recon_in
    level: str
    project: str
    subject: str = ""  # subject accession ID (subject level)
    experiment: str = ""  # experiment accession ID (experiment, scan and assessor levels)
    scan: str = ""  # scan ID (scan level)
    assessor: str = ""  # assessor accession ID (assessor and assessor_in levels)
    reconstruction: str = ""  # reconstruction ID (recon and recon_in levels)
    format: str = ""
    content: str = ""
    tags: str = ""
    description: str = ""
    insert_date: str = ""
    files: dict[str, FileEntry] = field(default_factory=dict)

    def total_size(self) -> int:
        """Sum of the entries' sizes."""
        return sum(f.size for f in self.files.values())


@dataclass(slots=True)
class Scan:
    """An image scan of an experiment; `id` is XNAT's scan ID string, `db_id` its row id."""

    id: str
    db_id: int
    experiment: str
    xsi_type: str = "xnat:mrScanData"
    type: str = ""
    series_description: str = ""
    quality: str = "usable"
    note: str = ""
    insert_date: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)


@dataclass(slots=True)
class Inputs:
    """The IN resources of an assessor or a reconstruction (what it was derived from),
    addressed as `…/assessors/{A}/in/resources` or `…/reconstructions/{R}/in/resources`;
    `kind` is "assessor" or "reconstruction", `of` that record's ID."""

    kind: str
    of: str
    session: str
    resources: dict[str, Resource] = field(default_factory=dict)


@dataclass(slots=True)
class Assessor:
    """An image assessor (derived data such as QC or FreeSurfer outputs) of the session
    `session`; `id` is an accession ID drawn from the experiments' counter, `project` the
    session's primary project, `resources` its OUT resources, `inputs` its IN resources."""

    id: str
    label: str
    session: str  # accession ID of the assessed experiment
    project: str
    xsi_type: str = "xnat:qcAssessmentData"
    date: str = ""  # YYYY-MM-DD or ""
    insert_date: str = ""
    insert_user: str = ""
    last_modified: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    inputs: Inputs = field(default_factory=lambda: Inputs("assessor", "", ""))

    def __post_init__(self) -> None:
        self.inputs.of, self.inputs.session = self.id, self.session


@dataclass(slots=True)
class Reconstruction:
    """An `xnat:reconstructedImageData` of the session `session`; `id` is the ID given at PUT
    (unique within its session), `resources` its OUT resources, `inputs` its IN resources."""

    id: str
    session: str
    type: str = ""
    base_scan_type: str = ""
    insert_date: str = ""
    resources: dict[str, Resource] = field(default_factory=dict)
    inputs: Inputs = field(default_factory=lambda: Inputs("reconstruction", "", ""))

    def __post_init__(self) -> None:
        self.inputs.of, self.inputs.session = self.id, self.session


class Shareable:
    """Project membership of records that can be shared into other projects (xnat-api §1.4):
    subjects and experiments. `project` is the primary project; `shares` maps each project the
    record is shared into to its label there."""

    __slots__ = ()
    project: str
    label: str
    shares: dict[str, str]

    def belongs_to(self, project: str) -> bool:
        """Whether the record is in `project`, as its primary project or shared into it."""
        return project == self.project or project in self.shares

    def label_in(self, project: str) -> str:
        """The record's label in `project` (a share may give it another)."""
        return self.shares.get(project, self.label)


@dataclass(slots=True)
class Experiment(Shareable):
    """A subject assessor (an imaging session); `id` is the accession ID, `project` the primary
    project, `shares` the projects it is shared into (xnat-api §1.4)."""

    id: str
    label: str
    project: str
    subject: str  # subject accession ID
    xsi_type: str = "xnat:mrSessionData"
    date: str = ""  # YYYY-MM-DD or ""
    insert_date: str = ""
    insert_user: str = ""
    last_modified: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    scans: dict[str, Scan] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    shares: dict[str, str] = field(default_factory=dict)  # project shared into → label there
    assessors: dict[str, Assessor] = field(default_factory=dict)  # by accession ID
    reconstructions: dict[str, Reconstruction] = field(default_factory=dict)  # by ID
    # the newest REST workflow on the session (a file uploaded or removed under it): XNAT
    # logs one per such request and `recent=` reads them; the session's own dates stay put
    workflow_date: str = ""


@dataclass(slots=True)
class Subject(Shareable):
    """A subject of one primary project (and any it is shared into); `experiments` holds
    accession IDs in insertion order."""

    id: str
    label: str
    project: str
    insert_date: str = ""
    insert_user: str = ""
    last_modified: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    experiments: list[str] = field(default_factory=list)
    resources: dict[str, Resource] = field(default_factory=dict)
    shares: dict[str, str] = field(default_factory=dict)  # project shared into → label there


@dataclass(slots=True)
class Project:
    """A project. `members` maps username → role (owners, members, collaborators)."""

    id: str
    name: str = ""
    secondary_id: str = ""
    description: str = ""
    accessibility: str = "private"  # private | protected | public
    prearchive_code: int = 0  # 0 manual, 4 auto-archive, 5 auto-archive overwrite
    owner: str = "admin"
    pi_firstname: str = ""
    pi_lastname: str = ""
    insert_date: str = ""
    aliases: list[str] = field(default_factory=list)
    members: dict[str, str] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    resources: dict[str, Resource] = field(default_factory=dict)


Owner = Project | Subject | Experiment | Scan | Assessor | Reconstruction | Inputs
