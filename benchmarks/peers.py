"""Peer clients downloading the same sessions, the way their documentation suggests.

* xnatpy: ``experiment.download_dir(dest)`` per session (one zip of all scans, extracted).
* pyxnat: ``experiment.scans().download(dest, type="ALL", extract=True)`` per session
  (walking project → subjects → experiments, the path XNAT routes scans under).

Uploads (``push`` workloads), the same tree into an empty project:

* xnatpy: the session and scan made with ``session.classes`` (``MrSessionData``,
  ``MrScanData``), then ``resource.upload_dir(folder)`` per scan resource (a tgz extracted by
  the server, xnatpy's default).
* pyxnat: ``resource.put_dir(folder)`` per scan resource after creating the session and scan.

DICOM imports (``import`` workloads), the same study folders into an empty project:

* xnatpy: per study, one after another (xnatpy's session is synchronous), a stored zip built
  with ``zipfile`` into a temp file (xnatpy sends a zip it is given; it makes none), then
  ``session.services.import_(zip, destination=…, overwrite="append",
  import_handler="DICOM-zip")``, the destination and overwrite ``xnatsync import`` sends.

Usage: ``python -m benchmarks.peers xnatpy|pyxnat|xnatpy-push|pyxnat-push|xnatpy-import URL
USER PASSWORD PROJECT DIR`` (DIR: where to download, the pulled tree to upload, or the study
folders to import)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.studyzip import archive_destination, study_folders, write_zip


def run_xnatpy(url: str, user: str, password: str, project: str, dest: Path) -> None:
    import xnat

    with xnat.connect(url, user=user, password=password, loglevel="ERROR") as session:
        experiments: Any = session.projects[project].experiments
        for experiment in experiments.values():
            experiment.download_dir(str(dest))


def run_pyxnat(url: str, user: str, password: str, project: str, dest: Path) -> None:
    from pyxnat import Interface

    interface = Interface(server=url, user=user, password=password)
    try:
        # scans are listed under project/subject/experiment: XNAT routes no
        # /projects/P/experiments/E/scans, so the subject must be in the path
        for subject in interface.select.project(project).subjects():
            for experiment in subject.experiments():
                target = dest / experiment.label()
                target.mkdir(parents=True, exist_ok=True)
                experiment.scans().download(str(target), type="ALL", extract=True)
    finally:
        interface.disconnect()


def scan_folders(tree: Path) -> list[tuple[str, str, str, str, str, Path]]:
    """(subject, session, scan ID, scan type, resource, files folder) of a pulled tree."""
    out = []
    for files in sorted(tree.glob("*/*/*/scans/*/resources/*/files")):
        _, subject, session, _, scan, _, resource, _ = files.relative_to(tree).parts
        scan_id, _, kind = scan.partition("-")
        out.append((subject, session, scan_id, kind, resource, files))
    return out


def push_xnatpy(url: str, user: str, password: str, project: str, tree: Path) -> None:
    import xnat

    with xnat.connect(url, user=user, password=password, loglevel="ERROR") as session:
        target: Any = session.projects[project]
        made: dict[tuple[str, str], Any] = {}
        for subject, label, scan_id, kind, resource, files in scan_folders(tree):
            if (subject, label) not in made:
                parent = session.classes.SubjectData(parent=target, label=subject)
                made[subject, label] = session.classes.MrSessionData(parent=parent, label=label)
            scan = session.classes.MrScanData(parent=made[subject, label], id=scan_id, type=kind)
            scan.create_resource(resource).upload_dir(str(files))


def push_pyxnat(url: str, user: str, password: str, project: str, tree: Path) -> None:
    from pyxnat import Interface

    interface = Interface(server=url, user=user, password=password)
    try:
        target = interface.select.project(project)
        for subject, label, scan_id, _kind, resource, files in scan_folders(tree):
            experiment = target.subject(subject).experiment(label)
            if not experiment.exists():
                experiment.create(experiments="xnat:mrSessionData")
            scan = experiment.scan(scan_id)
            if not scan.exists():
                scan.create(scans="xnat:mrScanData")
            scan.resource(resource).put_dir(str(files))
    finally:
        interface.disconnect()


def import_xnatpy(url: str, user: str, password: str, project: str, source: Path) -> None:
    import xnat

    with xnat.connect(url, user=user, password=password, loglevel="ERROR") as session:
        for subject, label, folder in study_folders(source):
            with tempfile.TemporaryDirectory(prefix="xnatpy-import-") as temp:
                target = Path(temp) / f"{label}.zip"
                write_zip(folder, target)
                session.services.import_(
                    str(target),
                    destination=archive_destination(project, subject, label),
                    overwrite="append",
                    import_handler="DICOM-zip",
                    content_type="application/zip",
                )


def main(argv: list[str]) -> None:
    tool, url, user, password, project, folder = argv
    if tool == "xnatpy-import":
        import_xnatpy(url, user, password, project, Path(folder))
        return
    if tool.endswith("-push"):
        pusher = push_xnatpy if tool == "xnatpy-push" else push_pyxnat
        pusher(url, user, password, project, Path(folder))
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    runner = run_xnatpy if tool == "xnatpy" else run_pyxnat
    runner(url, user, password, project, Path(folder))


if __name__ == "__main__":
    main(sys.argv[1:])
