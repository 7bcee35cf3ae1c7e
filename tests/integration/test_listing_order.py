"""The order owners are listed in: a subject's own resources are listed among the sessions, not
after every one of them, where each would cost a round trip at the end of the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import expected_tree, make_config, run_pull
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec

SPEC = SyntheticSpec(project="ORD", subjects=4, sessions=1, scans=1, files=2, file_size=1024)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=SPEC)) as emulator:
        yield emulator


def owners_listed(emu: Emulator) -> list[str]:
    """Whose files listing each files listing was, in the order they were answered."""
    kinds = []
    for record in emu.requests.matching("GET", "*/files"):
        if "format=zip" in record.query:
            continue
        if "/experiments/" in record.path:
            kinds.append("session")
        elif "/subjects/" in record.path:
            kinds.append("subject")
    return kinds


async def test_subjects_are_listed_between_the_sessions(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path, project="ORD")
    config = replace(config, limits=replace(config.limits, listings=1))  # one at a time
    summary, _ = await run_pull(config)
    assert summary.ok
    assert summary.files_transferred == len(expected_tree(emu)) == 8
    assert owners_listed(emu) == ["session", "subject"] * 4
