"""`token-lifetime=SECONDS`: alias tokens expire as XNAT's `aliasTokenTimeout` makes them
(xnat-api §2.3). Time comes from the session store's injected clock, so nothing sleeps.

XNAT (HibernateAliasTokenService): the expiry is fixed at issue (`estimatedExpirationTime`), an
expired token no longer authenticates (401, like a bogus one) and `validate` answers 200
`{"valid": null}` for it; a session the token opened lives on by its own idle timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.emulator.emuhelp import call
from xnatsync.emulator.faults import Faults
from xnatsync.emulator.server import Emulator

T0 = 1_700_000_000.0


@pytest.fixture
def now(emu: Emulator) -> list[float]:
    """The emulator's session clock, settable by the test."""
    clock = [T0]
    emu.sessions.clock = lambda: clock[0]
    return clock


async def issue(session: aiohttp.ClientSession) -> dict[str, Any]:
    """GET /data/services/tokens/issue as JSON."""
    async with session.get("/data/services/tokens/issue") as response:
        assert response.status == 200
        token: dict[str, Any] = await response.json()
    return token


def by_token(token: dict[str, Any]) -> dict[str, str]:
    """Basic credentials of an alias token."""
    return {"Authorization": aiohttp.encode_basic_auth(token["alias"], token["secret"])}


@pytest.fixture
async def bare(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that sends only the headers each call gives (no credentials, no cookie jar)."""
    async with aiohttp.ClientSession(emu.url, cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def test_tokens_expire_after_the_configured_lifetime(
    emu: Emulator, user: aiohttp.ClientSession, bare: aiohttp.ClientSession, now: list[float]
) -> None:
    emu.faults.configure("token-lifetime=60")
    token = await issue(user)
    assert token["estimatedExpirationTime"] == int((T0 + 60) * 1000)
    assert token["created"] == int(T0 * 1000)
    now[0] += 59
    assert await call(bare, "GET", "/xapi/users/username", headers=by_token(token)) == (
        200,
        "user",
    )
    now[0] += 2
    status, text = await call(bare, "GET", "/data/projects", headers=by_token(token))
    assert status == 401
    assert "Login attempt failed. Please try again." in text


async def test_validate_answers_null_for_an_expired_token(
    emu: Emulator, user: aiohttp.ClientSession, now: list[float]
) -> None:
    emu.faults.configure("token-lifetime=60")
    token = await issue(user)
    url = f"/data/services/tokens/validate/{token['alias']}/{token['secret']}"
    async with user.get(url) as response:
        assert await response.json() == {"valid": "user"}
    now[0] += 61
    async with user.get(url) as response:
        assert response.status == 200
        assert await response.json() == {"valid": None}


async def test_a_session_opened_with_a_token_outlives_it(
    emu: Emulator, user: aiohttp.ClientSession, bare: aiohttp.ClientSession, now: list[float]
) -> None:
    emu.faults.configure("token-lifetime=60")
    token = await issue(user)
    status, sid = await call(bare, "GET", "/data/JSESSION", headers=by_token(token))
    assert status == 200
    now[0] += 120  # token expired, session idle for less than its timeout
    cookie = {"Cookie": f"JSESSIONID={sid}"}
    assert await call(bare, "GET", "/data/auth", headers=cookie) == (
        200,
        "User 'user' is logged in",
    )
    # the session's user matches the token's, so XNAT does not check the token again
    status, _ = await call(bare, "GET", "/data/auth", headers={**cookie, **by_token(token)})
    assert status == 200


async def test_lifetime_applies_to_tokens_issued_after_the_switch(
    emu: Emulator, user: aiohttp.ClientSession, now: list[float]
) -> None:
    before = await issue(user)
    assert before["estimatedExpirationTime"] == int((T0 + 2 * 86400) * 1000)  # XNAT's 2 days
    emu.faults.configure("token-lifetime=30")
    after = await issue(user)
    assert after["estimatedExpirationTime"] == int((T0 + 30) * 1000)
    emu.faults.clear()
    assert (await issue(user))["estimatedExpirationTime"] == int((T0 + 2 * 86400) * 1000)


def test_token_lifetime_switch_values() -> None:
    assert Faults("token-lifetime=3600").token_lifetime == 3600.0
    assert Faults("token-lifetime=0.5").token_lifetime == 0.5
    assert Faults().token_lifetime is None
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match=f"token-lifetime={bad}"):
            Faults(f"token-lifetime={bad}")
