"""The watch daemon against the emulator, in the test's loop: studies trickling in are each
archived once after their quiet period; growing files wait; a late series is appended; bad
files are quarantined; an outage leaves a backlog that drains; after-upload acts only on
checked files; the health endpoint says 200 or 503."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.conftest import wait_for
from tests.integration.watchhelp import (
    archived,
    instance,
    instances,
    options,
    running,
    sends_by_session,
    until_done,
)
from xnatsync.emulator.server import Emulator

SESSION_A, SESSION_B = "PA_20240102", "PB_20240102"


async def test_trickling_studies_each_archived_once_after_their_quiet_period(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    async with running(options(emu, spool), state):
        instance(spool, "A", 1, 1)
        await wait_for(lambda: instances(state) == 1, what="study A queued")
        instance(spool, "B", 1, 1)
        for number in (2, 3):  # A keeps growing: not sent while instances keep coming
            await wait_for(lambda n=number: instances(state) >= n, what=f"instance {number}")
            instance(spool, "A", 2, number)
            last_a = time.monotonic()
        await until_done(state, {SESSION_A, SESSION_B})
        assert time.monotonic() - last_a >= 0.5  # A waited its quiet period after its last file
    assert sends_by_session(emu) == {SESSION_A: 1, SESSION_B: 1}
    sessions = await archived(emu)
    assert sessions == {
        SESSION_A: {("1", "IM1.dcm"), ("2", "IM2.dcm"), ("2", "IM3.dcm")},
        SESSION_B: {("1", "IM1.dcm")},
    }
    assert sorted(p.name for p in spool.rglob("*.dcm")) == ["IM1.dcm", "IM1.dcm", "IM2.dcm",
                                                            "IM3.dcm"]  # fmt: skip

