"""Deletes follow the server whatever runs came before, and a dry run plans what a run does.

Issue 7, item 1: after a plain pull noticed that a file left the server, the no-op fast path
of the next run marked the owner's every journal row seen, the departed file's included, so
``--delete`` never deleted it, while ``--dry-run --delete`` (which never takes the fast path)
said "1 to delete".
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import NOTES, make_config, run_pull, server_request
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.events import FileDeleted, PlanShown

GONE = "DEMO/DEMO01/DEMO01_MR1/resources/NOTES/files/notes.txt"
SESSION_RESOURCE = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/resources/NOTES"


async def test_delete_after_a_plain_pull_still_deletes(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    assert await server_request(emu, "DELETE", NOTES) == 200
    plain, _ = await run_pull(config)
    assert plain.ok
    assert (tmp_path / GONE).is_file()  # no --delete: kept

    summary, events = await run_pull(replace(config, delete=True))
    assert [d.relpath for d in events.of(FileDeleted)] == [GONE]
    assert not (tmp_path / GONE).exists()
    assert summary.files_deleted == 1

    after, events = await run_pull(replace(config, delete=True))
    assert events.of(FileDeleted) == []
    assert after.files_deleted == 0


def planned_deletes(events: list[PlanShown]) -> int:
    total = next(e.text for e in events if e.title == "plan")
    return int(total.split(" to delete")[0].rsplit(" ", 1)[1])


# one step of a history: change the server, or run a pull of some kind
STEPS = st.sampled_from(["remove file", "add file", "change file", "pull", "pull --delete"])


@settings(max_examples=20, deadline=None)
@given(history=st.lists(STEPS, min_size=1, max_size=6))
@example(history=["remove file", "pull"])  # the report's history
@example(history=["add file", "pull --delete", "remove file", "pull", "change file"])
def test_a_dry_run_plans_the_deletes_the_real_run_makes(history: list[str]) -> None:
    """Any history of server changes and runs with and without ``--delete``, then a dry run
    and a real run with ``--delete``: they delete the same number of files, and what the real
    run deleted is exactly what left the server."""
    asyncio.run(_replay(history))


class Server:
    """The files of the NOTES resource a history adds, changes and removes."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.present = [NOTES, f"{SESSION_RESOURCE}/files/sub/measures.csv"]
        self.removed: list[str] = []
        self.added = 0

    async def apply(self, step: str) -> None:
        if step == "remove file" and self.present:
            url = self.present.pop(0)
            assert await server_request(self.emu, "DELETE", url) == 200
            self.removed.append(url)
        elif step == "add file":
            self.added += 1
            url = f"{SESSION_RESOURCE}/files/added-{self.added}.txt"
            body = f"added {self.added}\n".encode()
            assert await server_request(self.emu, "PUT", url + "?inbody=true", body) == 200
            self.present.append(url)
        elif step == "change file" and self.present:
            url = self.present[-1] + "?overwrite=true&inbody=true"
            assert await server_request(self.emu, "PUT", url, b"changed\n") == 200


async def _replay(history: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with run_emulator(EmulatorConfig(seed="demo", root=Path(tmp) / "emu")) as emu:
            config = make_config(emu, Path(tmp) / "mirror")
            server = Server(emu)
            await run_pull(config)
            mirrored = set(server.present)
            for step in history:
                if step.startswith("pull"):
                    await run_pull(replace(config, delete=step.endswith("--delete")))
                    mirrored = (
                        (mirrored | set(server.present))
                        if "--delete" not in step
                        else (set(server.present))
                    )
                else:
                    await server.apply(step)
            _, dry_events = await run_pull(replace(config, delete=True, dry_run=True))
            planned = planned_deletes(dry_events.of(PlanShown))
            real, events = await run_pull(replace(config, delete=True))
            deleted = {d.relpath.rsplit("/files/", 1)[1] for d in events.of(FileDeleted)}
            gone = {url.rsplit("/files/", 1)[1] for url in mirrored - set(server.present)}
            assert (planned, deleted) == (len(gone), gone), history
            assert real.files_deleted == planned
