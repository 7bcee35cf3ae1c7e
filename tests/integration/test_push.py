"""push against the emulator: a pulled tree sent into another project comes back equal; what
is there is not sent again; what differs is a conflict unless --overwrite; the journal and the
server's own request log show what was sent."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import local_files, make_config, run_pull, server_request
from xnatsync.emulator.server import Emulator
from xnatsync.errors import ProjectNotFoundError, UsageError
from xnatsync.push.options import PushOptions
from xnatsync.push.run import push
from xnatsync.report import Summary
from xnatsync.xnat.auth import Credentials

ADMIN = Credentials("admin", "admin")
UPLOADS = "*/resources/*/files/*"


def push_options(
    emu: Emulator, source: Path, project: str = "COPY", **changes: object
) -> PushOptions:
    options = PushOptions(emu.url, project, source, ADMIN)
    return replace(options, **changes)  # type: ignore[arg-type]


async def make_project(emu: Emulator, project: str) -> None:
    assert await server_request(emu, "PUT", f"/data/projects/{project}") == 200


def tree_of(dest: Path, project: str) -> dict[str, str]:
    """Files under a pulled project folder, path (below the folder) → MD5."""
    return {
        p.removeprefix(project + "/"): hashlib.md5(b).hexdigest()
        for p, b in local_files(dest).items()
        if p.startswith(project + "/")
    }


def without_assessors(tree: dict[str, str]) -> dict[str, str]:
    return {p: m for p, m in tree.items() if "/assessors/" not in p}


async def pull_without_assessors(emu: Emulator, dest: Path) -> None:
    """A pulled DEMO tree less its assessors (push does not send those yet)."""
    await run_pull(make_config(emu, dest))
    for folder in (dest / "DEMO").glob("*/*/assessors"):
        shutil.rmtree(folder)


def puts(emu: Emulator) -> int:
    return sum(1 for r in emu.requests.matching("PUT", UPLOADS) if r.status < 300)


async def test_a_pulled_tree_pushed_into_another_project_comes_back_equal(
    emu: Emulator, tmp_path: Path
) -> None:
    await run_pull(make_config(emu, tmp_path / "a"))
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path / "a"))
    pulled = tree_of(tmp_path / "a", "DEMO")
    original = without_assessors(pulled)
    # assessors are reported, one failure per file, and the rest goes
    assert [f["reason"].endswith("assessors are not pushed yet") for f in summary.failures] == [
        True
    ] * (len(pulled) - len(original))
    assert summary.files_transferred == len(original) > 0
    assert puts(emu) == len(original)
    await run_pull(make_config(emu, tmp_path / "b", project="COPY"))
    assert tree_of(tmp_path / "b", "COPY") == original
    for folder in (tmp_path / "a" / "DEMO").glob("*/*/assessors"):
        shutil.rmtree(folder)
    # a second push sends nothing: every file is there with its MD5
    again = await push(push_options(emu, tmp_path / "a"))
    assert (again.ok, again.files_transferred, again.files_skipped) == (True, 0, len(original))
    assert puts(emu) == len(original)
    with sqlite3.connect(tmp_path / "a" / ".xnatsync" / "push.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall())
    assert states == {"done": len(original)}


async def test_a_changed_file_is_a_conflict_unless_overwrite(emu: Emulator, tmp_path: Path) -> None:
    await pull_without_assessors(emu, tmp_path)
    await make_project(emu, "COPY")
    assert (await push(push_options(emu, tmp_path))).ok
    victim = sorted((tmp_path / "DEMO").rglob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes() + b"changed")
    before = puts(emu)
    conflicted = await push(push_options(emu, tmp_path))
    assert (conflicted.ok, conflicted.files_failed, puts(emu)) == (False, 1, before)
    assert "--overwrite" in conflicted.failures[0]["reason"]
    replaced = await push(push_options(emu, tmp_path, overwrite=True))
    assert (replaced.ok, replaced.files_transferred, puts(emu)) == (True, 1, before + 1)
    await run_pull(make_config(emu, tmp_path / "back", project="COPY"))
    rel = victim.relative_to(tmp_path / "DEMO").as_posix()
    assert (tmp_path / "back" / "COPY" / rel).read_bytes() == victim.read_bytes()


async def test_a_missing_project_is_refused_and_nothing_is_sent(
    emu: Emulator, tmp_path: Path
) -> None:
    await run_pull(make_config(emu, tmp_path))
    with pytest.raises(ProjectNotFoundError, match="NOPE"):
        await push(push_options(emu, tmp_path, project="NOPE"))
    assert puts(emu) == 0


async def test_a_path_outside_the_layout_stops_the_run_naming_it(
    emu: Emulator, tmp_path: Path
) -> None:
    await run_pull(make_config(emu, tmp_path))
    stray = tmp_path / "DEMO" / "DEMO01" / "notes.txt"
    stray.write_text("not in the layout")
    await make_project(emu, "COPY")
    with pytest.raises(UsageError, match=r"DEMO01/notes\.txt"):
        await push(push_options(emu, tmp_path))
    assert puts(emu) == 0


async def test_dry_run_plans_and_sends_nothing(emu: Emulator, tmp_path: Path) -> None:
    await pull_without_assessors(emu, tmp_path)
    await make_project(emu, "COPY")
    summary: Summary = await push(push_options(emu, tmp_path, dry_run=True))
    assert summary.files_planned > 0
    assert puts(emu) == 0
    assert not (tmp_path / ".xnatsync" / "push.db").exists()
