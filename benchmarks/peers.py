"""Peer clients downloading the same sessions, the way their documentation suggests.

* xnatpy: ``experiment.download_dir(dest)`` per session (one zip of all scans, extracted).
* pyxnat: ``experiment.scans().download(dest, type="ALL", extract=True)`` per session
  (walking project → subjects → experiments, the path XNAT routes scans under).

Usage: ``python -m benchmarks.peers xnatpy|pyxnat URL USER PASSWORD PROJECT DEST``
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


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


def main(argv: list[str]) -> None:
    tool, url, user, password, project, dest = argv
    Path(dest).mkdir(parents=True, exist_ok=True)
    runner = run_xnatpy if tool == "xnatpy" else run_pyxnat
    runner(url, user, password, project, Path(dest))


if __name__ == "__main__":
    main(sys.argv[1:])
