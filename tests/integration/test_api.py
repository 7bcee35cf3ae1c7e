"""The public Python face: a pull driven through ``import xnatsync`` alone, no CLI."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import anyio
import pytest

import xnatsync
from tests.fakes import Recorder
from tests.integration.conftest import (
    cli_env,
    expected_tree,
    journal_states,
    local_files,
    md5,
    part_files,
)
from xnatsync.emulator.server import Emulator
from xnatsync.journal import Journal

README = Path(__file__).parents[2] / "README.md"


def options(emu: Emulator, dest: Path, password: str = "admin") -> xnatsync.PullOptions:
    return xnatsync.PullOptions(
        url=emu.url + "/",
        projects=("DEMO",),
        dest=dest,
        credentials=xnatsync.Credentials("admin", password),
    )


def demo_tree(emu: Emulator) -> dict[str, tuple[int, str]]:
    return {p: v for p, v in expected_tree(emu).items() if p.startswith("DEMO/")}


def test_the_public_names_are_sorted_and_all_there() -> None:
    assert xnatsync.__all__ == sorted(xnatsync.__all__)
    assert all(hasattr(xnatsync, name) for name in xnatsync.__all__)


async def test_pull_through_the_public_api_mirrors_and_reports(
    emu: Emulator, tmp_path: Path
) -> None:
    events = Recorder()
    summary = await xnatsync.pull(options(emu, tmp_path), events)
    expected = demo_tree(emu)
    files = local_files(tmp_path)
    assert {path: (len(data), md5(data)) for path, data in files.items()} == expected
    assert summary.ok
    assert summary.files_transferred == len(expected) == len(events.of(xnatsync.FileDone))
    assert summary.seconds > 0
    assert set(journal_states(tmp_path).values()) == {"done"}

    again = await xnatsync.pull(options(emu, tmp_path))
    assert again.ok
    assert again.files_transferred == 0
    assert again.files_skipped == len(expected)


async def test_a_rejected_login_raises_the_typed_error_and_writes_no_file(
    emu: Emulator, tmp_path: Path
) -> None:
    with pytest.raises(xnatsync.AuthError) as caught:
        await xnatsync.pull(options(emu, tmp_path, password="wrong"))
    assert caught.value.exit_code == xnatsync.ExitCode.AUTH
    assert local_files(tmp_path) == {}


async def test_cancelling_the_callers_scope_stops_the_run_and_a_rerun_finishes(
    emu: Emulator, tmp_path: Path
) -> None:
    """The library's way to stop: cancel the scope around ``pull`` (the CLI does this on
    SIGINT/SIGTERM). What was verified stays done; nothing is fetched twice."""
    done: list[str] = []
    with anyio.CancelScope() as scope:

        class StopAfterThree(Recorder):
            def emit(self, event: xnatsync.Event) -> None:
                if isinstance(event, xnatsync.FileDone):
                    done.append(event.relpath)
                    if len(done) == 3:
                        scope.cancel()

        await xnatsync.pull(options(emu, tmp_path), StopAfterThree())
    assert scope.cancelled_caught
    with Journal.open(tmp_path / ".xnatsync" / "journal.db") as journal:
        last = journal.last_run()
    assert last is not None
    assert last["status"] == "interrupted"
    assert len(done) >= 3
    assert not part_files(tmp_path)

    rerun = Recorder()
    summary = await xnatsync.pull(options(emu, tmp_path), rerun)
    fetched = {e.relpath for e in rerun.of(xnatsync.FileDone) if e.action == "downloaded"}
    assert summary.ok
    assert fetched
    assert fetched.isdisjoint(done)
    assert {p: (len(d), md5(d)) for p, d in local_files(tmp_path).items()} == demo_tree(emu)


async def test_the_readme_example_runs_as_written(emu: Emulator, tmp_path: Path) -> None:
    """The README's Python example, with only the URL, project and destination substituted."""
    text = README.read_text("utf-8")
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None, "README has no python example"
    code = block.group(1)
    assert "https://xnat.example.org" in code
    for placeholder in ('"mirror"', '"STUDY"'):
        assert placeholder in code
    code = (
        code.replace("https://xnat.example.org", emu.url)
        .replace('"STUDY"', '"DEMO"')
        .replace('"mirror"', repr(str(tmp_path / "mirror")))
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env=cli_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    expected = demo_tree(emu)
    assert f"{len(expected)} downloaded" in out.decode()
    assert {p: (len(d), md5(d)) for p, d in local_files(tmp_path / "mirror").items()} == expected
