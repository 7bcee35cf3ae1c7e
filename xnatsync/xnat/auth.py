"""Credentials and the XNAT session: log in once, re-authenticate single-flight, never loop.

XNAT creates a server session per Basic-authenticated request and locks an account after
repeated failed logins (xnat-api §2.1), so the client logs in once (``POST /data/JSESSION``)
and sends the ``JSESSIONID`` cookie afterwards. When the session goes stale every in-flight
request sees a 401 at about the same time; ``Authenticator.refresh`` makes exactly one of them
log in again and lets the others reuse the new session.

Invariants:

* The password (or alias-token secret) appears in no repr, str, log record or error message.
* Sessions are numbered by ``generation``; a refresh for a generation that is already replaced
  is a no-op, which is what makes re-login single-flight.
* A failed re-login poisons the authenticator: every later ``refresh`` raises the same
  ``AuthError`` without contacting the server again.

The HTTP exchange itself is injected (``login``): this module does no I/O of its own, so that
aiohttp exceptions are converted in one place, the client.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from xnatsync.errors import AuthError, BadResponseError, XnatSyncError

COOKIE_NAME = "JSESSIONID"
# Tomcat ids are hex, maybe with a ".jvmRoute" suffix; accept any cookie-safe token.
_SESSION_ID = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """A username and password, or an alias token as ``Credentials(alias, secret)``."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    __str__ = __repr__

    def authorization(self) -> str:
        """The ``Authorization`` header value of HTTP Basic (RFC 7617, UTF-8). A user name
        with a ``:`` cannot be sent this way (``AuthError``)."""
        if ":" in self.username:
            raise AuthError(
                f"user name {self.username!r} contains ':', which Basic auth cannot send"
            )
        token = base64.b64encode(f"{self.username}:{self.password}".encode())
        return "Basic " + token.decode("ascii")


def session_id_from_login(body: bytes, cookies: Mapping[str, str]) -> str:
    """The session id of a successful login: the body (text/plain) or the JSESSIONID cookie."""
    text = body.decode("ascii", "replace").strip()
    if _SESSION_ID.fullmatch(text):
        return text
    cookie = cookies.get(COOKIE_NAME, "").strip()
    if _SESSION_ID.fullmatch(cookie):
        return cookie
    raise AuthError("the server accepted the login but returned no session id")


class Authenticator:
    """Holds the current session id and coordinates re-authentication across tasks."""

    def __init__(self, login: Callable[[], Awaitable[str]]) -> None:
        self._login = login
        self._lock = anyio.Lock()
        self._session_id: str | None = None
        self._generation = 0
        self._failure: AuthError | None = None

    @property
    def generation(self) -> int:
        """Number of successful logins so far; requests remember it to report a stale session."""
        return self._generation

    @property
    def session_id(self) -> str | None:
        return self._session_id

    def cookie(self) -> dict[str, str]:
        """The ``Cookie`` header for the current session (empty before login)."""
        if self._session_id is None:
            return {}
        return {"Cookie": f"{COOKIE_NAME}={self._session_id}"}

    async def login(self) -> None:
        """The first login; its errors propagate as they are (bad credentials → AuthError)."""
        async with self._lock:
            self.check()
            self._session_id = await self._login()
            self._generation += 1

    async def refresh(self, stale_generation: int) -> None:
        """Re-login because a request made with ``stale_generation`` got a 401.

        Only the first caller for a generation logs in; the rest wait for it and return. Any
        failure of the re-login becomes a fatal ``AuthError`` that is remembered.
        """
        async with self._lock:
            self.check()
            if self._generation != stale_generation:
                return
            try:
                self._session_id = await self._login()
            except XnatSyncError as exc:
                failure = AuthError(f"re-authentication failed: {exc}")
                self.poison(failure)
                raise failure from exc
            self._generation += 1

    def poison(self, error: AuthError) -> None:
        """Remember a fatal authentication failure; no further logins are attempted."""
        self._session_id = None
        if self._failure is None:
            self._failure = error

    def forget(self) -> None:
        """Drop the session id (after logout)."""
        self._session_id = None

    def check(self) -> None:
        """Raise the remembered fatal ``AuthError``, if any."""
        if self._failure is not None:
            raise AuthError(str(self._failure))


# -- alias tokens (xnat-api §2.3): renewed through the live session before they expire ------


def looks_like_alias(username: str) -> bool:
    """Whether a user name is an alias token's (XNAT 1.7+ aliases are UUIDs)."""
    try:
        uuid.UUID(username)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True, repr=False)
class IssuedToken:
    """A token ``/data/services/tokens/issue`` answered: its alias and secret, and its
    lifetime in seconds (expiry minus issue time, both the server's; None if not given)."""

    alias: str
    secret: str
    lifetime: float | None

    def __repr__(self) -> str:
        return f"IssuedToken(alias={self.alias!r}, secret='***', lifetime={self.lifetime!r})"


def issued_token(body: bytes) -> IssuedToken:
    """The serialised ``AliasToken`` entity; ``BadResponseError`` that never quotes the body
    (it holds a secret)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        doc = None
    alias = doc.get("alias") if isinstance(doc, dict) else None
    secret = doc.get("secret") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(alias, str) or not isinstance(secret, str):
        raise BadResponseError("the token service answered something other than a token")
    expires = _number(doc.get("estimatedExpirationTime"))
    issued = _number(doc.get("created"))
    issued = issued if issued is not None else _number(doc.get("timestamp"))
    lifetime = (expires - issued) / 1000 if expires is not None and issued is not None else None
    return IssuedToken(alias, secret, lifetime if lifetime is None or lifetime > 0 else None)


def _number(value: Any) -> float | None:
    """Epoch milliseconds as XNAT serialises them (a number, sometimes a numeric string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value)
    return None
