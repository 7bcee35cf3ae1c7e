"""Accounts, HTTP sessions (JSESSIONID) and alias tokens of the emulated site; no HTTP here.

Time comes from an injected clock so idle expiry is testable without sleeping. A session dies
after `idle_timeout` seconds without use, or `max_age` seconds after creation when a fault spec
sets one. Tokens are valid until `token_timeout` after issue or until invalidated.

Sessions opened by a Basic login (`login`) are registered per user, as Spring Security's
SessionRegistry does in XNAT; those opened by `/data/services/auth` (`create`) are not, because
that path never runs the session strategy. With `max_per_user` set (XNAT's concurrentMaxSessions,
default 1000) a login that would exceed it fails and the older sessions live on
(ConcurrentSessionControlAuthenticationStrategy with exceptionIfMaximumExceeded); logging out or
expiring frees the slot.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from xnatsync.emulator.settings import User

_ALNUM = string.ascii_letters + string.digits
PRUNE_EVERY = 1000


@dataclass(slots=True)
class HttpSession:
    """A server-side session; `id` is 32 upper-case hex characters like Tomcat's."""

    id: str
    username: str
    created: float
    last_access: float


@dataclass(slots=True)
class AliasToken:
    """An alias token: Basic `alias:secret` authenticates as `username`."""

    id: int
    alias: str
    secret: str
    username: str
    created: float
    expires: float
    enabled: bool = True
    single_use: bool = False
    valid_ips: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """The serialised entity of §2.3 (times in epoch milliseconds)."""
        return {
            "id": self.id,
            "alias": self.alias,
            "secret": self.secret,
            "xdatUserId": self.username,
            "estimatedExpirationTime": int(self.expires * 1000),
            "singleUse": self.single_use,
            "enabled": self.enabled,
            "validIPAddresses": self.valid_ips,
            "created": int(self.created * 1000),
            "timestamp": int(self.created * 1000),
            "disabled": 0 if self.enabled else int(self.created * 1000),
        }


class Sessions:
    """Who may log in, who is logged in, and which alias tokens exist."""

    def __init__(
        self,
        users: tuple[User, ...],
        idle_timeout: float,
        token_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = {u.username: u for u in users}
        self.idle_timeout = idle_timeout
        self.token_timeout = token_timeout
        self.max_age: float | None = None
        self.max_per_user: int | None = None
        self.clock = clock
        self._sessions: dict[str, HttpSession] = {}
        self._registered: dict[str, set[str]] = {}  # username -> ids of registered sessions
        self._tokens: dict[str, AliasToken] = {}
        self._created = 0

    def authenticate(self, username: str, password: str) -> User | None:
        """The user for a password or an alias token (`alias`, `secret`); None if wrong."""
        username = username.rpartition("/")[2]  # `provider/username` form
        user = self.users.get(username)
        if user is not None and secrets.compare_digest(user.password, password):
            return user
        token = self.token(username)
        if token is not None and secrets.compare_digest(token.secret, password):
            if token.single_use:
                token.enabled = False
            return self.users.get(token.username)
        return None

    def create(self, username: str) -> HttpSession:
        """A new session for a user."""
        now = self.clock()
        session = HttpSession(secrets.token_hex(16).upper(), username, now, now)
        self._sessions[session.id] = session
        self._created += 1
        if self._created % PRUNE_EVERY == 0:  # Basic-only clients leave a session per request
            self._prune(now)
        return session

    def login(self, username: str) -> HttpSession | None:
        """A new registered session (Basic login), or None if the user already holds
        `max_per_user` live registered sessions."""
        if self.max_per_user is not None and self.count(username) >= self.max_per_user:
            return None
        session = self.create(username)
        self._registered.setdefault(username, set()).add(session.id)
        return session

    def count(self, username: str) -> int:
        """How many live registered sessions a user holds (what XNAT's registry reports)."""
        now = self.clock()
        ids = self._registered.get(username, set())
        for sid in [sid for sid in ids if not self._alive(self._sessions.get(sid), now)]:
            self._drop(sid)
        return len(self._registered.get(username, ()))

    def _alive(self, session: HttpSession | None, now: float) -> bool:
        if session is None or now - session.last_access > self.idle_timeout:
            return False
        return self.max_age is None or now - session.created <= self.max_age

    def _drop(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        registered = self._registered.get(session.username)
        if registered is not None:
            registered.discard(session_id)
            if not registered:
                del self._registered[session.username]
        return True

    def _prune(self, now: float) -> None:
        for sid in [s.id for s in self._sessions.values() if not self._alive(s, now)]:
            self._drop(sid)

    def get(self, session_id: str) -> HttpSession | None:
        """A live session, touched; expired ones are dropped and give None."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if not self._alive(session, now):
            self._drop(session_id)
            return None
        session.last_access = now
        return session

    def exists(self, session_id: str) -> bool:
        """Whether a session id is known (without touching or expiring it)."""
        return session_id in self._sessions

    def invalidate(self, session_id: str) -> bool:
        """End a session; False if it did not exist."""
        return self._drop(session_id)

    def invalidate_user(self, username: str, *, registered_only: bool = False) -> list[str]:
        """End every session of a user (or only the registered ones); their ids."""
        if registered_only:
            ids = sorted(self._registered.get(username, ()))
        else:
            ids = [s.id for s in self._sessions.values() if s.username == username]
        for sid in ids:
            self._drop(sid)
        return ids

    def issue_token(self, username: str) -> AliasToken:
        """A fresh alias token for a user."""
        now = self.clock()
        token = AliasToken(
            id=len(self._tokens) + 1,
            alias=str(uuid.uuid4()),
            secret="".join(secrets.choice(_ALNUM) for _ in range(64)),
            username=username,
            created=now,
            expires=now + self.token_timeout,
        )
        self._tokens[token.alias] = token
        return token

    def token(self, alias: str) -> AliasToken | None:
        """A token that is enabled and not expired."""
        token = self._tokens.get(alias)
        if token is None or not token.enabled or token.expires < self.clock():
            return None
        return token

    def known_token(self, alias: str) -> AliasToken | None:
        """A token whatever its state (for validate/invalidate answers)."""
        return self._tokens.get(alias)

    def tokens_of(self, username: str) -> list[AliasToken]:
        """A user's live tokens."""
        return [t for t in self._tokens.values() if t.username == username and self.token(t.alias)]
