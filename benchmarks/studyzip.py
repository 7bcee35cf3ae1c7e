"""One stored zip per study, as the import baselines build it (standard library only, so the
processes that use it pay for no extra imports).

``study_folders(root)`` lists the study folders ``dicomsynth.write_studies`` wrote, as
(subject label, session label, folder); ``write_zip(folder, target)`` zips one of them with
Python's ``zipfile``, members ``{series}/{file}`` stored (DICOM pixel data hardly compresses,
and XNAT's own tools send it stored), into ``target``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path


def study_folders(root: Path) -> list[tuple[str, str, Path]]:
    return [(p.parent.name, p.name, p) for p in sorted(root.glob("*/*")) if p.is_dir()]


def write_zip(folder: Path, target: Path) -> int:
    """Zip every file below ``folder`` into ``target``; return how many."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder).as_posix())
    return len(files)


def archive_destination(project: str, subject: str, session: str) -> str:
    """The import service's ``dest`` for one archived session (labels, as xnatsync sends)."""
    return f"/archive/projects/{project}/subjects/{subject}/experiments/{session}"
