"""The contract suite's targets: the emulator always, and a real XNAT when one is named.

Set ``XNATSYNC_CONTRACT_URL`` (with ``XNATSYNC_CONTRACT_USER``, ``XNATSYNC_CONTRACT_PASSWORD``
and ``XNATSYNC_CONTRACT_PROJECT``, a project that has at least one session with files) to run
every test of this folder against that server too. The suite only reads; its one write-free
side effect on a real server is a single failed login (the wrong-password test).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from xnatsync.emulator.server import run_emulator
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient


@dataclass(frozen=True)
class Target:
    """A server the client's contract is checked against."""

    name: str
    url: str
    credentials: Credentials
    project: str

    def client(self, credentials: Credentials | None = None) -> XnatClient:
        return XnatClient(self.url, credentials or self.credentials)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        names = ["emulator"] + (["real"] if os.environ.get("XNATSYNC_CONTRACT_URL") else [])
        metafunc.parametrize("target", names, indirect=True)


@pytest.fixture
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "real":
        env = os.environ
        yield Target(
            "real",
            env["XNATSYNC_CONTRACT_URL"],
            Credentials(env["XNATSYNC_CONTRACT_USER"], env["XNATSYNC_CONTRACT_PASSWORD"]),
            env["XNATSYNC_CONTRACT_PROJECT"],
        )
        return
    async with run_emulator(EmulatorConfig(seed="demo")) as emu:
        yield Target("emulator", emu.url, Credentials("admin", "admin"), "DEMO")
