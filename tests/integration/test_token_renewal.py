"""A run logged in with an alias token outlives the token (issue 11, "Long runs"): the client
takes fresh tokens through its live session before each runs out, so a re-login after the
session died uses a valid one. Both clocks (the emulator's session store and the client's) are
set by the test; nothing sleeps."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import FAST_RETRY
from xnatsync.emulator.server import Emulator
from xnatsync.errors import AuthError
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

T0 = 1_800_000_000.0
LIFETIME = 100.0


async def issue_token(emu: Emulator) -> dict[str, Any]:
    """The user's own alias token, as they would get it from XNAT's web page."""
    async with (
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as http,
        http.get("/data/services/tokens/issue") as response,
    ):
        assert response.status == 200
        token: dict[str, Any] = await response.json()
    return token


def issues(emu: Emulator) -> int:
    return emu.requests.count("GET", "/data/services/tokens/issue")


@pytest.fixture
def now(emu: Emulator) -> list[float]:
    clock = [T0]
    emu.sessions.clock = lambda: clock[0]
    emu.faults.configure(f"token-lifetime={LIFETIME:g}")
    return clock


async def test_a_run_outlives_its_alias_token(emu: Emulator, now: list[float]) -> None:
    own = await issue_token(emu)
    emu.requests.clear()
    credentials = Credentials(own["alias"], own["secret"])
    client = XnatClient(emu.url, credentials, retry=FAST_RETRY, clock=lambda: now[0])
    async with client:
        assert issues(emu) == 1  # a fresh token at login: its lifetime is now known
        now[0] += LIFETIME * 0.6  # past half of that token's life
        assert await client.list_projects()
        assert issues(emu) == 2
        now[0] += LIFETIME * 0.5  # the user's token and the first renewed one have expired
        assert emu.sessions.token(own["alias"]) is None
        emu.sessions.invalidate_user("admin")  # and the session dies (idle, restart, …)
        projects = await client.list_projects()  # re-login with the token renewed in time
        assert {p["ID"] for p in projects} >= {"DEMO"}
        # replaced tokens were invalidated, not left to expire
        assert len(emu.sessions.tokens_of("admin")) == 1
    assert emu.sessions.tokens_of("admin") == []  # and the last one at exit
    own_token = emu.sessions.known_token(own["alias"])
    assert own_token is not None
    assert own_token.enabled  # the user's own token is theirs: never invalidated


async def test_without_renewal_the_same_run_would_stop(emu: Emulator, now: list[float]) -> None:
    """The control: the token the user gave, used as it is, no longer logs in."""
    own = await issue_token(emu)
    now[0] += LIFETIME * 1.1
    client = XnatClient(emu.url, Credentials(own["alias"], own["secret"]), retry=FAST_RETRY)
    with pytest.raises(AuthError, match="rejected"):
        async with client:
            pass


async def test_a_password_login_issues_no_token(emu: Emulator, now: list[float]) -> None:
    emu.requests.clear()
    async with XnatClient(emu.url, Credentials("admin", "admin"), retry=FAST_RETRY) as client:
        assert await client.list_projects()
    assert issues(emu) == 0


async def test_a_replacement_client_logs_in_with_the_token_handed_over(
    emu: Emulator, now: list[float]
) -> None:
    """The watch daemon reopens its client after an outage: the token the old client renewed
    is handed over, kept valid, and logs in after the user's own token has expired."""
    own = await issue_token(emu)
    first = XnatClient(emu.url, Credentials(own["alias"], own["secret"]), retry=FAST_RETRY,
                       clock=lambda: now[0])  # fmt: skip
    async with first:
        now[0] += LIFETIME * 0.6
        assert await first.list_projects()  # renewed: a token issued now, valid past T0 + 100
        handed = first.hand_over()
    assert handed.username != own["alias"]
    now[0] += LIFETIME * 0.5  # the user's own token has expired
    assert emu.sessions.token(own["alias"]) is None
    async with XnatClient(emu.url, handed, retry=FAST_RETRY) as second:
        assert {p["ID"] for p in await second.list_projects()} >= {"DEMO"}
