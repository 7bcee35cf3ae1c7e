"""Authentication, sessions, tokens and permission answers (xnat-api §2, §8.1, §11.1, §11.5)."""

from __future__ import annotations

import re

import aiohttp
import pytest

from xnatsync.emulator.server import Emulator
from xnatsync.emulator.sessions import PRUNE_EVERY, Sessions
from xnatsync.emulator.settings import User

PROJECTS = "/data/projects?format=json"


def _basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(login, password)}


async def test_no_credentials_gets_401_with_basic_challenge(anon: aiohttp.ClientSession) -> None:
    async with anon.get(PROJECTS) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'


async def test_bad_credentials_get_login_failed_page_without_challenge(emu: Emulator) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth("admin", "wrong")}
    async with (
        aiohttp.ClientSession(emu.url, headers=auth) as session,
        session.get(PROJECTS) as response,
    ):
        assert response.status == 401
        assert "WWW-Authenticate" not in response.headers
        assert "Login attempt failed. Please try again." in await response.text()
        assert response.content_type == "text/html"


async def test_basic_login_sets_session_cookies_and_cookie_alone_works(
    emu: Emulator, anon: aiohttp.ClientSession
) -> None:
    async with anon.get("/data/JSESSION", headers=emu.auth()) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        sid = await response.text()
        assert re.fullmatch(r"[0-9A-F]{32}", sid)
        assert response.cookies["JSESSIONID"].value == sid
        expiry = response.cookies["SESSION_EXPIRATION_TIME"].value.strip('"')
        assert expiry.endswith(",900000")
    async with anon.get(PROJECTS) as response:  # cookie only
        assert response.status == 200
    logins = [r for r in emu.requests.records if r.path == "/data/projects"]
    assert logins[-1].user == "admin"


async def test_logout_invalidates_the_cookie(emu: Emulator, anon: aiohttp.ClientSession) -> None:
    async with anon.get("/data/JSESSION", headers=emu.auth()) as response:
        assert response.status == 200
    async with anon.delete("/data/JSESSION") as response:
        assert response.status == 200
    async with anon.get(PROJECTS) as response:
        assert response.status == 401


async def test_logout_by_path(emu: Emulator, anon: aiohttp.ClientSession) -> None:
    async with anon.post("/REST/JSESSION", headers=emu.auth()) as response:
        sid = await response.text()
    async with anon.delete(f"/data/JSESSION/{sid}") as response:
        assert response.status == 200
    assert not emu.sessions.exists(sid)


async def test_jsession_without_credentials_is_restlet_401(anon: aiohttp.ClientSession) -> None:
    async with anon.get("/data/JSESSION") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="XNAT Protected Area"'
        assert "<h3>The request requires user authentication</h3>" in await response.text()


async def test_services_auth_form_login(anon: aiohttp.ClientSession, emu: Emulator) -> None:
    form = {"username": "user", "password": "user"}
    async with anon.put("/data/services/auth", data=form) as response:
        assert response.status == 200
        sid = await response.text()
        assert emu.sessions.exists(sid)
    async with anon.get("/data/auth") as response:
        assert await response.text() == "User 'user' is logged in"
    async with anon.post("/data/services/auth", data={"username": "user", "password": "x"}) as r:
        assert r.status == 401
    async with anon.get("/data/services/auth") as response:
        assert response.status == 405


async def test_idle_timeout_expires_session_and_basic_renews_it(
    emu: Emulator, anon: aiohttp.ClientSession
) -> None:
    now = [1_000_000.0]
    emu.sessions.clock = lambda: now[0]
    async with anon.get("/data/JSESSION", headers=emu.auth()) as response:
        first = await response.text()
    now[0] += emu.config.session_timeout + 1
    async with anon.get(PROJECTS) as response:
        assert response.status == 401
    async with anon.get(PROJECTS, headers=emu.auth()) as response:
        assert response.status == 200
        second = response.cookies["JSESSIONID"].value
    assert second != first


async def test_valid_cookie_and_basic_of_same_user_do_not_create_sessions(
    emu: Emulator, anon: aiohttp.ClientSession
) -> None:
    async with anon.get("/data/JSESSION", headers=emu.auth()) as response:
        sid = await response.text()
    async with anon.get(PROJECTS, headers=emu.auth()) as response:
        assert response.status == 200
        assert "JSESSIONID" not in response.cookies
    async with anon.get("/data/JSESSION") as response:
        assert await response.text() == sid


async def test_user_endpoints_and_build_info(
    admin: aiohttp.ClientSession, anon: aiohttp.ClientSession
) -> None:
    async with admin.get("/xapi/users/username") as response:
        assert await response.text() == "admin"
    async with admin.get("/xapi/users/profile") as response:
        profile = await response.json()
        assert profile["username"] == "admin"
    async with anon.get("/xapi/siteConfig/buildInfo") as response:
        assert response.status == 200
        info = await response.json()
        assert info["version"] == "1.8.10"
        assert all(isinstance(v, str) for v in info.values())
    async with admin.get("/data/version") as response:
        assert response.status == 404


async def test_browser_user_agent_is_redirected_to_login(anon: aiohttp.ClientSession) -> None:
    headers = {"User-Agent": "Mozilla/5.0"}
    async with anon.get(PROJECTS, headers=headers, allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/app/template/Login.vm"


async def test_alias_token_lifecycle(emu: Emulator, user: aiohttp.ClientSession) -> None:
    async with user.get("/data/services/tokens/issue") as response:
        assert response.status == 200
        token = await response.json()
    assert re.fullmatch(r"[0-9a-f-]{36}", token["alias"])
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token["secret"])
    assert isinstance(token["estimatedExpirationTime"], int)
    assert token["xdatUserId"] == "user"
    alias, secret = token["alias"], token["secret"]
    async with aiohttp.ClientSession(emu.url, headers=_basic(alias, secret)) as by_token:
        async with by_token.get("/xapi/users/username") as response:
            assert await response.text() == "user"
        async with user.get(f"/data/services/tokens/validate/{alias}/{secret}") as response:
            assert await response.json() == {"valid": "user"}
        async with user.get("/data/services/tokens/show") as response:
            assert [t["alias"] for t in await response.json()] == [alias]
        async with user.get(f"/data/services/tokens/invalidate/{alias}") as response:
            assert await response.json() == {"result": "OK"}
        async with by_token.get("/xapi/users/username") as response:
            assert response.status == 401


async def test_token_errors(user: aiohttp.ClientSession, admin: aiohttp.ClientSession) -> None:
    async with user.get("/data/services/tokens/validate/nope/nope") as response:
        assert response.status == 404
    async with user.get("/data/services/tokens/issue/user/admin") as response:
        assert response.status == 403
        assert "admin" in await response.text()
    async with admin.get("/data/services/tokens/issue/user/user") as response:
        assert (await response.json())["xdatUserId"] == "user"


async def test_project_visibility(
    user: aiohttp.ClientSession, admin: aiohttp.ClientSession
) -> None:
    async with user.get(PROJECTS) as response:
        ids = {r["ID"] for r in (await response.json())["ResultSet"]["Result"]}
    assert ids == {"DEMO", "PUB"}
    async with admin.get(PROJECTS) as response:
        ids = {r["ID"] for r in (await response.json())["ResultSet"]["Result"]}
    assert ids == {"DEMO", "PUB", "PRIV"}


async def test_private_project_of_another_user(user: aiohttp.ClientSession) -> None:
    for path in (
        "/data/projects/PRIV?format=json",
        "/data/projects/PRIV/subjects?format=json",
        "/data/projects/PRIV/experiments/PRIV01_MR1/scans?format=json",
        "/data/projects/PRIV/subjects/PRIV01?format=json",
    ):
        async with user.get(path) as response:
            assert response.status == 404, path
    async with user.put("/data/projects/PRIV/subjects/NEW") as response:
        assert response.status == 403
    async with user.delete("/data/projects/PRIV/subjects/PRIV01") as response:
        assert response.status == 404


async def test_public_project_is_readable_not_writable(user: aiohttp.ClientSession) -> None:
    async with user.get("/data/projects/PUB/experiments?format=json") as response:
        assert response.status == 200
    async with user.put("/data/projects/PUB/subjects/NEW") as response:
        assert response.status == 403
    async with user.delete("/data/projects/PUB") as response:
        assert response.status == 403
    async with user.put("/data/projects/DEMO/subjects/NEW") as response:
        assert response.status == 201


async def test_admin_kills_active_sessions(
    emu: Emulator, anon: aiohttp.ClientSession, admin: aiohttp.ClientSession
) -> None:
    async with anon.get("/data/JSESSION", headers=emu.auth("user")) as response:
        sid = await response.text()
    async with admin.delete("/xapi/users/active/user") as response:
        assert await response.json() == [sid]
    async with anon.get(PROJECTS) as response:
        assert response.status == 401


def test_idle_sessions_are_pruned_as_new_ones_arrive() -> None:
    now = [0.0]
    sessions = Sessions((User("a", "b"),), idle_timeout=10, token_timeout=10, clock=lambda: now[0])
    first = sessions.create("a")
    now[0] = 100.0
    for _ in range(PRUNE_EVERY - 1):
        sessions.create("a")
    assert not sessions.exists(first.id)
    assert sessions.authenticate("a", "b") == User("a", "b")
    assert sessions.authenticate("a", "x") is None


@pytest.mark.parametrize("prefix", ["/data", "/REST"])
async def test_session_and_token_routes_answer_under_each_prefix(
    emu: Emulator, prefix: str
) -> None:
    """§9's first line under /data and /REST; attached without the /archive alias in XNAT
    (attachURI), so under /data/archive they are Restlet 404s, except the session count."""
    async with aiohttp.ClientSession(emu.url, headers=emu.auth("user")) as user:
        expected = [
            ("GET", "/JSESSION", 200), ("GET", "/auth", 200),
            ("GET", "/services/tokens/issue", 200), ("GET", "/user/user/sessions", 200),
        ]  # fmt: skip
        for method, path, status in expected:
            async with user.request(method, prefix + path) as response:
                assert response.status == status, (method, path)
            async with user.request(method, "/data/archive" + path) as response:
                archived = path.startswith("/user/")  # attachArchiveURI in XNATApplication
                assert response.status == (200 if archived else 404), path
        async with user.request("DELETE", prefix + "/JSESSION") as response:
            assert response.status == 200
