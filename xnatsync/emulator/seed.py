"""Seed data: `demo` (real DICOM in project DEMO plus permission fixtures) and `synthetic`
(N subjects × sessions × scans × files of deterministic pseudo-random bytes).

Seeding is idempotent per project: a project that already exists (e.g. loaded from `--root`) is
left alone. Demo layout, for tests and docs:

* DEMO (private, owner admin, `user` is a member): subjects DEMO01–DEMO03; sessions
  DEMO01_MR1, DEMO01_MR2, DEMO02_MR1, DEMO03_CT1 (dates 2024-01-0N); scans 1..3 with a
  `DICOM` resource of 4 instances each; a session resource `NOTES` (notes.txt, sub/measures.csv)
  on every session; a project resource `PROTOCOLS` (protocol.txt); DEMO01_MR1 has one image
  assessor, DEMO01_MR1_QC (`xnat:qcAssessmentData`, accession ID after the four sessions'), whose
  OUT resource `QC` holds report.txt and snapshots/axial.txt.
* PRIV (private, owner `other`): one subject/session/scan — invisible to `user` (404).
* PUB (public, owner `other`): one subject/session/scan — readable by `user`, not writable (403).
* Stored searches (`/data/search/saved`, for `pull --search ID`): `DEMO_MR` ("MR sessions of
  DEMO": every `xnat:mrSessionData` of DEMO — DEMO01_MR1, DEMO01_MR2, DEMO02_MR1 — with
  label, subject label, date and project; not secure, so everyone lists it) and `DEMO_CT`
  ("CT sessions of DEMO": DEMO03_CT1; secure, allowed user `user` only, so only `user` lists
  it). Results follow the caller's rights: `other` reads no DEMO rows from either. They are
  made with DEMO, so a `--root` whose DEMO predates them has none (PUT them, or start afresh).
"""

from __future__ import annotations

import hashlib
import pathlib
import random
import tempfile
import time
from collections.abc import Iterator

from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance
from xnatsync.emulator.records import Resource
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.emulator.store import Store
from xnatsync.emulator.stored_search import from_document, make_document, rewrite

_SCANS = (("1", "T1w", "t1_mprage"), ("2", "T2w", "t2_tse"), ("3", "fMRI/rest", "bold rest"))
_DEMO_SESSIONS = (
    ("DEMO01", "DEMO01_MR1", "2024-01-01", "MR"),
    ("DEMO01", "DEMO01_MR2", "2024-01-02", "MR"),
    ("DEMO02", "DEMO02_MR1", "2024-01-03", "MR"),
    ("DEMO03", "DEMO03_CT1", "2024-01-04", "CT"),
)
_DEMO_SEARCHES = (  # ID, root type, brief description, secure, allowed users ("" = the admin)
    ("DEMO_MR", "xnat:mrSessionData", "MR sessions of DEMO", False, ("",)),
    ("DEMO_CT", "xnat:ctSessionData", "CT sessions of DEMO", True, ("user",)),
)
INSTANCES = 4
BLOCK = 1 << 20


def seed(store: Store, config: EmulatorConfig) -> float:
    """Apply `config.seed` to the store; the seconds it took."""
    started = time.perf_counter()
    if config.seed == "demo":
        seed_demo(store, config.admin_user)
    elif config.seed == "synthetic":
        seed_synthetic(store, config.synthetic, config.admin_user)
    elif config.seed:
        raise ValueError(f"unknown seed {config.seed!r} (demo or synthetic)")
    store.save()
    return time.perf_counter() - started


def _dicom_session(
    store: Store, project: str, subject: str, label: str, date: str, mod: str
) -> None:
    xsi = "xnat:ctSessionData" if mod == "CT" else "xnat:mrSessionData"
    experiment, _ = store.ensure_experiment(project, subject, label, xsi, date=date, modality=mod)
    scan_xsi = "xnat:ctScanData" if mod == "CT" else "xnat:mrScanData"
    for scan_id, scan_type, description in _SCANS:
        scan, _ = store.ensure_scan(experiment.id, scan_id, scan_xsi, scan_type, description)
        resource, _ = store.ensure_resource(scan, "DICOM", "DICOM", "RAW")
        for number in range(1, INSTANCES + 1):
            spec = InstanceSpec(
                patient_name=f"{subject}^Demo",
                patient_id=label,
                study_key=f"{project}/{label}",
                series_number=int(scan_id),
                series_description=description,
                instance_number=number,
                modality=mod,
                study_date=date.replace("-", ""),
            )
            name = f"{scan_id}-{number:04d}.dcm"
            store.add_file(resource, name, make_instance(spec), format="DICOM", content="RAW")


def _notes(store: Store, project: str, label: str) -> None:
    experiment = store.experiment(project, label)
    assert experiment is not None
    notes, _ = store.ensure_resource(experiment, "NOTES", "TXT", "notes")
    store.add_file(notes, "notes.txt", f"Notes of {label}\n".encode(), format="TXT")
    csv = f"measure,value\nvolume,{len(label) * 100}\n".encode()
    store.add_file(notes, "sub/measures.csv", csv, format="CSV")


def _qc_assessor(store: Store, project: str, label: str) -> None:
    experiment = store.experiment(project, label)
    assert experiment is not None
    assessor, _ = store.ensure_assessor(
        experiment, f"{label}_QC", "xnat:qcAssessmentData", date=experiment.date, type="manual"
    )
    qc, _ = store.ensure_resource(assessor, "QC", "TXT", "QC")
    report = f"QC report for {label}\nscans 1-3: usable\nmotion: low\nverdict: pass\n"
    store.add_file(qc, "report.txt", report.encode(), format="TXT", content="QC")
    snapshot = f"axial snapshot of {label} scan 1 (text stand-in for an image)\n"
    store.add_file(qc, "snapshots/axial.txt", snapshot.encode(), format="TXT", content="QC")


def _stored_searches(store: Store, admin: str) -> None:
    """The demo's stored searches (module docstring), made with the DEMO project: a root
    whose DEMO exists keeps its searches as they are (deleted ones stay deleted)."""
    for search_id, root, brief, secure, users in _DEMO_SEARCHES:
        fields = [
            (root, "LABEL", "Label", "string"),
            ("xnat:subjectData", "SUBJECT_LABEL", "Subject", "string"),
            (root, "DATE", "Date", "date"),
            (root, "PROJECT", "Project", "string"),
        ]
        document = make_document(
            search_id,
            root,
            fields,
            [(f"{root}/PROJECT", "=", "DEMO")],
            brief_description=brief,
            secure=secure,
        )
        search = from_document(document.encode(), search_id)
        search.users = [user or admin for user in users]
        store.saved_searches[search_id] = rewrite(search)
        store.dirty = True


def seed_demo(store: Store, admin: str = "admin") -> None:
    """The demo archive described in the module docstring."""
    if store.project("DEMO") is None:
        demo = store.create_project("DEMO", "Demo project", "DEMO", "private", admin)
        demo.members["user"] = "Members"
        demo.description = "Synthetic DICOM sessions for trying xnatsync"
        for subject, label, date, modality in _DEMO_SESSIONS:
            _dicom_session(store, "DEMO", subject, label, date, modality)
            _notes(store, "DEMO", label)
        protocols, _ = store.ensure_resource(demo, "PROTOCOLS", "TXT", "protocol")
        store.add_file(protocols, "protocol.txt", b"Acquire T1w, T2w and resting-state BOLD.\n")
        _qc_assessor(store, "DEMO", "DEMO01_MR1")
        _stored_searches(store, admin)
    for pid, access in (("PRIV", "private"), ("PUB", "public")):
        if store.project(pid) is None:
            store.create_project(pid, f"{pid} project", pid, access, "other")
            _dicom_session(store, pid, f"{pid}01", f"{pid}01_MR1", "2024-02-01", "MR")


def file_blocks(key: str, size: int) -> Iterator[bytes]:
    """Deterministic pseudo-random content for a synthetic file, in blocks of at most 1 MiB."""
    rng = random.Random(key)
    for start in range(0, size, BLOCK):
        yield rng.randbytes(min(BLOCK, size - start))


def _add_synthetic(store: Store, resource: Resource, name: str, key: str, size: int) -> None:
    if size <= 4 * BLOCK:
        store.add_file(resource, name, b"".join(file_blocks(key, size)))
        return
    digest = hashlib.md5()
    handle, raw = tempfile.mkstemp(dir=store.temp_dir())
    with open(handle, "wb") as out:  # large files never sit in memory whole
        for block in file_blocks(key, size):
            out.write(block)
            digest.update(block)
    store.add_file(resource, name, pathlib.Path(raw), digest=digest.hexdigest())


def seed_synthetic(store: Store, spec: SyntheticSpec, admin: str = "admin") -> None:
    """`spec.subjects` subjects × `sessions` × `scans` × `files` files of `file_size` bytes."""
    if store.project(spec.project) is not None:
        return
    store.create_project(spec.project, f"Synthetic {spec.project}", spec.project, "private", admin)
    for s in range(1, spec.subjects + 1):
        subject = f"{spec.project}_S{s:04d}"
        for e in range(1, spec.sessions + 1):
            label = f"{subject}_MR{e}"
            date = f"2024-{(e - 1) % 12 + 1:02d}-{(s - 1) % 28 + 1:02d}"
            experiment, _ = store.ensure_experiment(spec.project, subject, label, date=date)
            for c in range(1, spec.scans + 1):
                scan, _ = store.ensure_scan(experiment.id, str(c), type=f"SERIES{c}")
                resource, _ = store.ensure_resource(scan, "DICOM", "DICOM", "RAW")
                for f in range(1, spec.files + 1):
                    name = f"{c}-{f:05d}.dat"
                    _add_synthetic(store, resource, name, f"{label}/{c}/{name}", spec.file_size)
