"""Every example runs as written (issue 7, item 9): the README's shell block, the examples of
``xnatsync pull --help`` and the files in ``configs/``, against the demo emulator, with only
its URL in place of https://xnat.example.org. Setup that the examples name but do not make
(a cohort CSV, an alias token in $XNAT_TOKEN) is made here."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

import aiohttp

from tests.integration.conftest import cli_env, local_files
from xnatsync.cli.importcmd import IMPORT_EXAMPLE
from xnatsync.cli.pull import PULL_EXAMPLE
from xnatsync.cli.push import PUSH_EXAMPLE
from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance
from xnatsync.emulator.server import Emulator

REPO = Path(__file__).parents[2]
PLACEHOLDER = "https://xnat.example.org"
COHORT_JOURNAL = Path("/tmp/xnatsync-cohort-journal.db")


def workdir(tmp_path: Path, url: str) -> Path:
    """A folder like the repository's: configs/ with the emulator's URL in them."""
    work = tmp_path / "work"
    (work / "configs").mkdir(parents=True)
    for config in (REPO / "configs").glob("*.toml"):
        text = config.read_text("utf-8").replace(PLACEHOLDER, url)
        (work / "configs" / config.name).write_text(text, "utf-8")
    return work


async def bash(script: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    proc = await asyncio.create_subprocess_exec(
        "bash", "-e", "-c", script, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def readme_examples() -> str:
    blocks: list[str] = re.findall(
        r"```sh\n(.*?)```", (REPO / "README.md").read_text("utf-8"), re.S
    )
    return next(b for b in blocks if "xnatsync pull" in b)


async def test_the_readme_examples_run_as_written(emu: Emulator, tmp_path: Path) -> None:
    work = workdir(tmp_path, emu.url)
    env = {k: v for k, v in cli_env().items() if not k.startswith("XNATSYNC_")}
    code, out = await bash(readme_examples().replace(PLACEHOLDER, emu.url), work, env)
    assert code == 0, out
    mirrored = local_files(work / "mirror")
    assert any(p.startswith("DEMO/") for p in mirrored)
    cohort = local_files(work / "cohort")
    assert cohort
    assert all("/scans/1-T1w/resources/DICOM/" in p for p in cohort), sorted(cohort)
    assert {p.split("/")[2] for p in cohort} == {"DEMO01_MR1", "DEMO02_MR1"}
    assert json.loads((work / "last-mirror.json").read_text())["status"] == "ok"
    assert "verified" in out


async def test_the_help_examples_run_as_written(emu: Emulator, tmp_path: Path) -> None:
    work = workdir(tmp_path, emu.url)
    (work / "sessions.csv").write_text("label\nDEMO01_MR1\n")
    examples = re.sub(r"\\\n\s*", "", PULL_EXAMPLE).splitlines()
    commands = [line.strip() for line in examples if line.strip().startswith("xnatsync ")]
    assert len(commands) == 5
    for command in commands:
        code, out = await bash(command.replace(PLACEHOLDER, emu.url), work, cli_env())
        assert code == 0, f"{command}\n{out}"


async def test_the_push_help_examples_run_as_written(emu: Emulator, tmp_path: Path) -> None:
    work = workdir(tmp_path, emu.url)
    text = re.sub(r"\\\n\s*", "", PUSH_EXAMPLE)
    setup = re.findall(r"'(xnatsync pull [^']+)'", text)
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("xnatsync ")]
    assert (len(setup), len(commands)) == (1, 2)
    async with (
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin,
        admin.put("/data/projects/COPY") as response,
    ):
        assert response.status == 200
    for command in setup + commands:
        code, out = await bash(command.replace(PLACEHOLDER, emu.url), work, cli_env())
        assert code == 0, f"{command}\n{out}"
    assert re.search(r"^\d+ uploaded \(.*\), 0 already there, 0 failed", out, re.M), out


async def test_the_import_help_examples_run_as_written(emu: Emulator, tmp_path: Path) -> None:
    work = workdir(tmp_path, emu.url)
    export_study(work / "export")
    text = re.sub(r"\\\n\s*", "", IMPORT_EXAMPLE)
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("xnatsync ")]
    assert len(commands) == 2
    env = {**cli_env(), "XDG_STATE_HOME": str(tmp_path / "state")}
    for command in commands:
        code, out = await bash(command.replace(PLACEHOLDER, emu.url), work, env)
        assert code == 0, f"{command}\n{out}"
    assert re.search(r"^3 uploaded \(.*\), 0 already there, 0 failed", out, re.M), out
    assert str(tmp_path / "state" / "xnatsync" / "import") in out  # where its journal is


async def test_the_config_files_run_as_written(emu: Emulator, tmp_path: Path) -> None:
    """Each file in configs/ through the command of its table ([pull], [push], [import])."""
    work = workdir(tmp_path, emu.url)
    (work / "cohort.csv").write_text("session_label,age\nDEMO01_MR1,31\nDEMO02_MR1,47\n")
    export_study(work / "export")
    async with (
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin,
        admin.get("/data/services/tokens/issue") as response,
    ):
        token = await response.json()
    async with (
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin,
        admin.put("/data/projects/COPY") as response,
    ):
        assert response.status == 200
    env = {**cli_env(), "XNAT_TOKEN": f"{token['alias']}:{token['secret']}"}
    configs = sorted(
        (c for c in (REPO / "configs").glob("*.toml") if "[watch]" not in c.read_text()),
        key=lambda c: ("[push]" in c.read_text(), c.name),
    )  # a daemon's config (scanner.toml) runs in test_watch_cli, which stops it
    try:
        for config in configs:
            command = next(c for c in ("push", "import", "pull") if f"[{c}]" in config.read_text())
            if command == "push":  # the tree it sends: the mirror, less assessors (not sent yet)
                for folder in (work / "xnat-mirror" / "DEMO").glob("*/*/assessors"):
                    shutil.rmtree(folder)
            code, out = await bash(f"xnatsync {command} --config configs/{config.name}", work, env)
            assert code == 0, f"{config.name}\n{out}"
    finally:
        for leftover in COHORT_JOURNAL.parent.glob(COHORT_JOURNAL.name + "*"):
            leftover.unlink()
    assert local_files(work / "xnat-mirror")
    assert local_files(work / "cohort")
    assert json.loads((work / "last-push.json").read_text())["files_transferred"] > 0
    assert json.loads((work / "last-import.json").read_text())["files_transferred"] == 3
    shutil.rmtree(work)


def export_study(folder: Path) -> None:
    """A small DICOM export: one study, two series."""
    for series, number in ((1, 1), (1, 2), (2, 1)):
        instance = InstanceSpec(study_key="ex", series_number=series, instance_number=number)
        target = folder / f"s{series}" / f"IM{number}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(make_instance(instance))
