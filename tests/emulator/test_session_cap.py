"""`sessions-per-user=N`: XNAT's per-account cap on concurrent sessions (concurrentMaxSessions,
xnat-api §12) and `/data/user/{username}/sessions`, the count DAX polls.

As in XNAT (Spring's ConcurrentSessionControlAuthenticationStrategy with
exceptionIfMaximumExceeded), the login past the cap fails with XNAT's bad-credentials 401 and the
older sessions live on; logging out or idling out frees a slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.emulator.emuhelp import call
from xnatsync.emulator.faults import Faults
from xnatsync.emulator.server import Emulator

FAILED = "Login attempt failed. Please try again."


@pytest.fixture
async def bare(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that sends only the headers each call gives (no credentials, no cookie jar)."""
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(emu.url, cookie_jar=jar) as session:
        yield session


def cookie(sid: str) -> dict[str, str]:
    """Headers presenting a JSESSIONID only."""
    return {"Cookie": f"JSESSIONID={sid}"}


async def login(bare: aiohttp.ClientSession, emu: Emulator, username: str) -> tuple[int, str]:
    """A Basic login on GET /data/JSESSION: status and body (the session id on success)."""
    return await call(bare, "GET", "/data/JSESSION", headers=emu.auth(username))


async def count(bare: aiohttp.ClientSession, sid: str, username: str) -> object:
    """What /data/user/{username}/sessions reports, asked with session `sid`."""
    async with bare.get(f"/data/user/{username}/sessions", headers=cookie(sid)) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        return await response.json()


async def test_login_past_the_cap_fails_and_older_sessions_live_on(
    emu: Emulator, bare: aiohttp.ClientSession
) -> None:
    emu.faults.configure("sessions-per-user=2")
    first, second = await login(bare, emu, "user"), await login(bare, emu, "user")
    assert (first[0], second[0]) == (200, 200)
    async with bare.get("/data/JSESSION", headers=emu.auth("user")) as response:
        assert response.status == 401
        assert FAILED in await response.text()
        assert "WWW-Authenticate" not in response.headers
    assert await call(bare, "GET", "/data/auth", headers=cookie(first[1])) == (
        200,
        "User 'user' is logged in",
    )
    assert await count(bare, first[1], "user") == {"user": 2}
    # other accounts have their own allowance
    assert (await login(bare, emu, "other"))[0] == 200
    assert (await login(bare, emu, "admin"))[0] == 200


async def test_logout_frees_a_slot(emu: Emulator, bare: aiohttp.ClientSession) -> None:
    emu.faults.configure("sessions-per-user=1")
    status, sid = await login(bare, emu, "user")
    assert status == 200
    assert (await login(bare, emu, "user"))[0] == 401
    assert (await call(bare, "DELETE", "/data/JSESSION", headers=cookie(sid)))[0] == 200
    status, again = await login(bare, emu, "user")
    assert status == 200
    assert await count(bare, again, "user") == {"user": 1}
    assert (await login(bare, emu, "user"))[0] == 401


async def test_idle_expiry_frees_a_slot(emu: Emulator, bare: aiohttp.ClientSession) -> None:
    now = [1_000_000.0]
    emu.sessions.clock = lambda: now[0]
    emu.faults.configure("sessions-per-user=1")
    assert (await login(bare, emu, "user"))[0] == 200
    now[0] += emu.config.session_timeout - 1
    assert (await login(bare, emu, "user"))[0] == 401
    now[0] += 2
    assert (await login(bare, emu, "user"))[0] == 200


async def test_cookieless_basic_clients_open_a_session_per_request(
    emu: Emulator, user: aiohttp.ClientSession
) -> None:
    emu.faults.configure("sessions-per-user=3")
    statuses = [(await call(user, "GET", "/data/projects?format=json"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 401]


async def test_a_valid_cookie_needs_no_new_slot(emu: Emulator, bare: aiohttp.ClientSession) -> None:
    emu.faults.configure("sessions-per-user=1")
    _, sid = await login(bare, emu, "user")
    both = {**emu.auth("user"), **cookie(sid)}
    for _ in range(3):
        assert (await call(bare, "GET", "/data/projects?format=json", headers=both))[0] == 200


async def test_alias_token_logins_count_for_the_tokens_user(
    emu: Emulator, bare: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    emu.faults.configure("sessions-per-user=2")
    async with user.get("/data/services/tokens/issue") as response:  # a Basic login: 1 of 2
        token = await response.json()
    assert (await login(bare, emu, "user"))[0] == 200
    basic = {"Authorization": aiohttp.encode_basic_auth(token["alias"], token["secret"])}
    assert (await call(bare, "GET", "/data/JSESSION", headers=basic))[0] == 401


async def test_services_auth_sessions_are_neither_capped_nor_counted(
    emu: Emulator, bare: aiohttp.ClientSession
) -> None:
    emu.faults.configure("sessions-per-user=1")
    _, sid = await login(bare, emu, "user")
    form = {"username": "user", "password": "user"}
    status, other = await call(bare, "POST", "/data/services/auth", data=form)
    assert status == 200
    assert await call(bare, "GET", "/data/auth", headers=cookie(other)) == (
        200,
        "User 'user' is logged in",
    )
    assert await count(bare, sid, "user") == {"user": 1}


async def test_session_count_route_permissions_and_delete(
    emu: Emulator, bare: aiohttp.ClientSession
) -> None:
    _, mine = await login(bare, emu, "user")
    _, theirs = await login(bare, emu, "other")
    status, _ = await call(bare, "GET", "/data/user/other/sessions", headers=cookie(mine))
    assert status == 403
    _, admin_sid = await login(bare, emu, "admin")
    assert await count(bare, admin_sid, "other") == {"other": 1}
    assert await count(bare, admin_sid, "nobody") == {"nobody": 0}
    path = "/data/archive/user/other/sessions"
    assert (await call(bare, "DELETE", path, headers=cookie(admin_sid)))[0] == 200
    assert (await call(bare, "GET", "/data/auth", headers=cookie(theirs)))[0] == 401
    assert (await call(bare, "DELETE", path, headers=cookie(admin_sid)))[0] == 404
    assert await count(bare, admin_sid, "other") == {"other": 0}


def test_sessions_per_user_switch_values() -> None:
    assert Faults("sessions-per-user=25").sessions_per_user == 25
    assert Faults().sessions_per_user is None
    for bad in ("0", "-3", "many", "2.5"):
        with pytest.raises(ValueError, match=f"sessions-per-user={bad}"):
            Faults(f"sessions-per-user={bad}")
