"""A selection that names what the server does not have says so (issue 7, item 6).

Subjects and experiments named explicitly (on the command line or in a cohort file) that no
requested project has are errors: listed in the summary and the report, exit 1, while the
named ones that exist are pulled. A scan-type glob, resource label or type that matches
nothing is a warning: a filter may legitimately match nothing in some projects.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tests.integration.conftest import local_files, make_config, run_cli, run_pull
from xnatsync.emulator.server import Emulator
from xnatsync.events import Notice
from xnatsync.pull.selection import Selection


async def test_a_named_experiment_the_server_lacks_is_an_error(
    emu: Emulator, tmp_path: Path
) -> None:
    selection = Selection(experiments=frozenset({"DEMO01_MR1", "DEMO01_MR9"}))
    summary, _ = await run_pull(replace(make_config(emu, tmp_path), selection=selection))
    assert not summary.ok
    assert summary.not_found == [{"what": "experiment", "name": "DEMO01_MR9"}]
    assert any("/DEMO01_MR1/" in p for p in local_files(tmp_path))
    assert "not found: experiment DEMO01_MR9" in summary.render()


async def test_a_named_subject_the_server_lacks_is_an_error(emu: Emulator, tmp_path: Path) -> None:
    selection = Selection(subjects=frozenset({"NOBODY"}))
    summary, _ = await run_pull(replace(make_config(emu, tmp_path), selection=selection))
    assert not summary.ok
    assert summary.not_found == [{"what": "subject", "name": "NOBODY"}]


async def test_names_found_by_id_or_label_are_not_reported(emu: Emulator, tmp_path: Path) -> None:
    experiment = next(e for e in emu.store.experiments.values() if e.label == "DEMO01_MR1")
    selection = Selection(experiments=frozenset({experiment.id}), subjects=frozenset({"DEMO01"}))
    summary, _ = await run_pull(replace(make_config(emu, tmp_path), selection=selection))
    assert summary.ok
    assert summary.not_found == []


async def test_a_scan_type_glob_that_matches_nothing_is_a_warning(
    emu: Emulator, tmp_path: Path
) -> None:
    selection = Selection(scan_types=("FLAIR*",))
    summary, events = await run_pull(replace(make_config(emu, tmp_path), selection=selection))
    assert summary.ok
    assert any("--scan-type 'FLAIR*' matched no scan" in n.message for n in events.of(Notice))


async def test_the_cli_exits_1_and_the_report_lists_the_names(
    emu: Emulator, tmp_path: Path
) -> None:
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("label\nDEMO01_MR1\nDEMO02_MR1\nDEMO99_MR1\n")
    report = tmp_path / "report.json"
    code, _, err = await run_cli(
        "pull", emu.url, "--project", "DEMO", "--dest", str(tmp_path / "d"), "--no-progress",
        "--experiment", f"@{cohort}:label", "--report", str(report),
    )  # fmt: skip
    assert code == 1, err
    assert "not found: experiment DEMO99_MR1" in err
    data = json.loads(report.read_text())
    assert data["not_found"] == [{"what": "experiment", "name": "DEMO99_MR1"}]
    assert data["status"] == "failed"
