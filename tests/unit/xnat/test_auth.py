"""auth: credentials never show their secret; re-login is single-flight and never loops."""

from __future__ import annotations

import base64
import pickle

import anyio
import pytest

from xnatsync.errors import AuthError, BadResponseError, TransientRemoteError
from xnatsync.xnat.auth import (
    Authenticator,
    Credentials,
    issued_token,
    looks_like_alias,
    session_id_from_login,
)

SENTINEL = "s3ntinel-PASSWORD"


def test_credentials_hide_the_password() -> None:
    creds = Credentials("alice", SENTINEL)
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}", repr([creds])):
        assert SENTINEL not in text
        assert "alice" in text
    assert creds.password == SENTINEL


def test_alias_tokens_are_credentials_too() -> None:
    token = Credentials("0b7c8e4e-0f3a-4c57-9a1e-2a1b3c4d5e6f", SENTINEL)
    assert SENTINEL not in repr(token)
    assert pickle.loads(pickle.dumps(token)) == token


@pytest.mark.parametrize(
    ("body", "cookies", "expected"),
    [
        (b"A1B2C3D4E5F60718293A4B5C6D7E8F90\n", {}, "A1B2C3D4E5F60718293A4B5C6D7E8F90"),
        (b"ABCDEF0123.node1", {}, "ABCDEF0123.node1"),
        (b"<html>login</html>", {"JSESSIONID": "FEED"}, "FEED"),
        (b"", {"JSESSIONID": "FEED"}, "FEED"),
    ],
)
def test_session_id_from_login(body: bytes, cookies: dict[str, str], expected: str) -> None:
    assert session_id_from_login(body, cookies) == expected


def test_login_without_a_session_id_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="no session id"):
        session_id_from_login(b"<html>Welcome</html>", {})


class FakeLogin:
    """An injected login exchange that can be held open and made to fail."""

    def __init__(self) -> None:
        self.logins = 0
        self.fail_with: Exception | None = None
        self.gate = anyio.Event()
        self.gate.set()

    async def __call__(self) -> str:
        self.logins += 1
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return f"SESSION{self.logins}"


async def test_concurrent_refreshes_log_in_once() -> None:
    server = FakeLogin()
    auth = Authenticator(server)
    await auth.login()
    stale = auth.generation
    assert auth.cookie() == {"Cookie": "JSESSIONID=SESSION1"}

    server.gate = anyio.Event()  # hold the re-login open while 20 workers pile up
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(auth.refresh, stale)
        await anyio.wait_all_tasks_blocked()
        server.gate.set()

    assert server.logins == 2
    assert auth.generation == stale + 1
    assert auth.cookie() == {"Cookie": "JSESSIONID=SESSION2"}


async def test_refresh_for_an_old_generation_is_a_no_op() -> None:
    server = FakeLogin()
    auth = Authenticator(server)
    await auth.login()
    await auth.refresh(auth.generation)
    await auth.refresh(auth.generation - 1)
    assert server.logins == 2


async def test_failed_re_login_is_fatal_and_poisons() -> None:
    server = FakeLogin()
    auth = Authenticator(server)
    await auth.login()
    stale = auth.generation
    server.fail_with = AuthError("HTTP 401: Login attempt failed")
    server.gate = anyio.Event()

    errors: list[AuthError] = []

    async def worker() -> None:
        try:
            await auth.refresh(stale)
        except AuthError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        server.gate.set()

    assert len(errors) == 10
    assert server.logins == 2  # one failed re-login, no loop
    assert auth.session_id is None
    with pytest.raises(AuthError, match="re-authentication failed"):
        await auth.refresh(auth.generation)
    assert server.logins == 2


async def test_transient_failure_of_re_login_is_still_fatal() -> None:
    server = FakeLogin()
    auth = Authenticator(server)
    await auth.login()
    server.fail_with = TransientRemoteError("HTTP 503", status=503)
    with pytest.raises(AuthError, match="503"):
        await auth.refresh(auth.generation)


async def test_first_login_errors_propagate_unchanged() -> None:
    server = FakeLogin()
    server.fail_with = TransientRemoteError("HTTP 503", status=503)
    auth = Authenticator(server)
    with pytest.raises(TransientRemoteError):
        await auth.login()
    assert auth.cookie() == {}


def test_basic_authorization_is_utf8_and_refuses_a_colon_in_the_user() -> None:
    header = Credentials("jürgen", "pa:ss wörd").authorization()
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]).decode() == "jürgen:pa:ss wörd"
    with pytest.raises(AuthError, match="contains ':'"):
        Credentials("a:b", "pw").authorization()


def test_an_issued_token_is_read_without_ever_quoting_its_secret() -> None:
    body = (
        b'{"alias": "8d3e7a52-8c38-4c66-9d3c-2f4a4f0c7a11", "secret": "s3cr3tVALUE",'
        b' "estimatedExpirationTime": 1700000172800000, "created": 1700000000000000,'
        b' "xdatUserId": "user"}'
    )
    token = issued_token(body)
    assert token.alias == "8d3e7a52-8c38-4c66-9d3c-2f4a4f0c7a11"
    assert token.secret == "s3cr3tVALUE"
    assert token.lifetime == 172800.0
    assert "s3cr3tVALUE" not in repr(token)
    assert looks_like_alias(token.alias)
    assert not looks_like_alias("admin")
    no_created = b'{"alias": "a", "secret": "b", "estimatedExpirationTime": 5, "timestamp": "1"}'
    assert issued_token(no_created).lifetime == 0.004
    assert issued_token(b'{"alias": "a", "secret": "b"}').lifetime is None
    with pytest.raises(BadResponseError) as caught:
        issued_token(b'{"alias": "a", "secret": 7, "note": "s3cr3tVALUE"}')
    assert "s3cr3tVALUE" not in str(caught.value)
