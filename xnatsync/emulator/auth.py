"""Authentication of the emulator: the auth middleware and the session, token and user routes.

Rules (xnat-api §2, §11.1, §11.5, §11.14): Basic credentials (password or alias token) on any
request; a valid JSESSIONID cookie is enough on its own; a stale cookie plus valid Basic silently
gets a new session; bad credentials → 401 Tomcat page "Login attempt failed. Please try again."
without `WWW-Authenticate`; no credentials → 401 with `WWW-Authenticate: Basic realm="<site>"`
(Restlet's page and realm "XNAT Protected Area" on /data/JSESSION); a browser User-Agent without
credentials → 302 to the login page. Cookies are set in `on_response_prepare`, so streamed
answers get them too.

Fault switches applied per request: `sessions-per-user=N` caps a user's concurrent Basic logins
(the login past the cap gets the same 401 as bad credentials, as XnatBasicAuthenticationFilter
answers a SessionAuthenticationException; §12), and `token-lifetime=SECONDS` sets the lifetime
of alias tokens issued from then on (default: the config's, XNAT's 2 days). `GET
/data/user/{username}/sessions` reports `{"<username>": <open sessions>}` (UserSessionId; DAX
polls it), DELETE ends them.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

from aiohttp import web

from xnatsync.emulator.common import (
    CONFIG_KEY,
    FAULTS_KEY,
    USER_KEY,
    Handler,
    add_data_route,
    config_of,
    error_page,
    fail,
    json_text,
    user_of,
)
from xnatsync.emulator.sessions import HttpSession, Sessions

SESSIONS_KEY: web.AppKey[Sessions] = web.AppKey("xnat_sessions", Sessions)
SESSION_KEY: web.RequestKey[HttpSession] = web.RequestKey("xnat_session", HttpSession)
NEW_SESSION_KEY: web.RequestKey[str] = web.RequestKey("xnat_new_session", str)  # created now
LOGIN_PAGE = "/app/template/Login.vm"
_BROWSER = re.compile(r"MSIE|Mozilla|AppleWebKit|Opera")
_OPEN = re.compile(r"^(/xapi/siteConfig/buildInfo.*|(/data|/data/archive|/REST)/services/auth)$")
_FAILED = "Login attempt failed. Please try again."
_TOMCAT = (
    '<!doctype html><html lang="en"><head><title>HTTP Status {status} – {reason}</title></head>'
    '<body><h1>HTTP Status {status} – {reason}</h1><hr class="line" /><p><b>Type</b> Status '
    'Report</p><p><b>Message</b> {message}</p><hr class="line" /><h3>Apache Tomcat</h3>'
    "</body></html>"
)


def tomcat_page(status: int, reason: str, message: str) -> web.Response:
    """A Tomcat HTML error page (Spring-layer errors, §1.5)."""
    text = _TOMCAT.format(status=status, reason=reason, message=message)
    return web.Response(status=status, text=text, content_type="text/html")


def _basic(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    username, _, password = decoded.partition(":")
    return username, password


def _unauthenticated(request: web.Request) -> web.Response:
    if _BROWSER.search(request.headers.get("User-Agent", "")):
        raise web.HTTPFound(LOGIN_PAGE)
    if request.path.rstrip("/").endswith("/JSESSION"):
        response = error_page(401, "The request requires user authentication")
        response.headers["WWW-Authenticate"] = 'Basic realm="XNAT Protected Area"'
        return response
    response = tomcat_page(401, "Unauthorized", "Full authentication is required")
    response.headers["WWW-Authenticate"] = f'Basic realm="{request.app[CONFIG_KEY].site_id}"'
    return response


def _same_user(sessions: Sessions, username: str, basic_name: str) -> bool:
    """Whether Basic credentials name the session's user (directly or by one of the user's token
    aliases, expired or not): then XNAT does not authenticate them again."""
    if basic_name.rpartition("/")[2] == username:
        return True
    token = sessions.known_token(basic_name)
    return token is not None and token.enabled and token.username == username


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identify the user (cookie, then Basic) or answer 401/302 for protected paths."""
    sessions = request.app[SESSIONS_KEY]
    faults = request.app[FAULTS_KEY]
    sessions.max_age = faults.session_max_age
    sessions.max_per_user = faults.sessions_per_user
    lifetime = faults.token_lifetime
    sessions.token_timeout = config_of(request).token_timeout if lifetime is None else lifetime
    if _OPEN.match(request.path):
        return await handler(request)
    cookie = request.cookies.get("JSESSIONID", "")
    session = sessions.get(cookie) if cookie else None
    user = sessions.users.get(session.username) if session else None
    creds = _basic(request)
    if creds is not None and (user is None or not _same_user(sessions, user.username, creds[0])):
        authed = sessions.authenticate(*creds)
        if authed is None:
            return tomcat_page(401, "Unauthorized", _FAILED)
        if user is None or user.username != authed.username:
            session = sessions.login(authed.username)
            if session is None:  # over the concurrent-session cap
                return tomcat_page(401, "Unauthorized", _FAILED)
            request[NEW_SESSION_KEY] = session.id
        user = authed
    if user is None or session is None:
        return _unauthenticated(request)
    request[USER_KEY] = user
    request[SESSION_KEY] = session
    return await handler(request)


async def set_session_cookies(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: JSESSIONID for new sessions, SESSION_EXPIRATION_TIME always."""
    sessions = request.app[SESSIONS_KEY]
    new = request.get(NEW_SESSION_KEY)
    if isinstance(new, str) and sessions.exists(new):
        # on_response_prepare runs after cookies became headers, so add the header itself
        response.headers.add("Set-Cookie", f"JSESSIONID={new}; Path=/; HttpOnly")
    session = request.get(SESSION_KEY)
    if isinstance(session, HttpSession):
        now_ms = int(sessions.clock() * 1000)
        value = f"{now_ms},{int(sessions.idle_timeout * 1000)}"
        response.headers.add("Set-Cookie", f'SESSION_EXPIRATION_TIME="{value}"; Path=/')


def _session(request: web.Request) -> HttpSession:
    session = request.get(SESSION_KEY)
    if not isinstance(session, HttpSession):
        fail(401, "The request requires user authentication")
    return session


async def jsession(request: web.Request) -> web.Response:
    """GET/POST /data/JSESSION: the session id as text/plain (`?CSRF=true` adds a token)."""
    text = _session(request).id
    if request.query.get("CSRF", "").lower() == "true":
        text += f"; XNAT_CSRF={secrets.token_hex(16)}"
    return web.Response(text=text, content_type="text/plain")


async def logout(request: web.Request) -> web.Response:
    """DELETE /data/JSESSION[/{id}]: invalidate the session."""
    target = request.match_info.get("sid") or _session(request).id
    request.app[SESSIONS_KEY].invalidate(target)
    return web.Response(text="", content_type="text/plain")


def _known_name(request: web.Request, username: str) -> str:
    """The account name matching `username` case-insensitively (as XNAT's registry lookup)."""
    names = request.app[SESSIONS_KEY].users
    return next((n for n in names if n.lower() == username.lower()), username)


async def user_sessions(request: web.Request) -> web.Response:
    """GET /data/user/{username}/sessions: `{"<username>": <open registered sessions>}`;
    DELETE ends them (404 if there are none). Others' sessions are for admins only (403)."""
    user, username = user_of(request), request.match_info["username"]
    if not user.admin and user.username != username:
        fail(403, "Only administrators can get the session list for users other than themselves.")
    sessions = request.app[SESSIONS_KEY]
    name = _known_name(request, username)
    if request.method == "DELETE":
        if not sessions.invalidate_user(name, registered_only=True):
            fail(404, "Not Found")
        return web.Response(text="", content_type="text/plain")
    return json_text({username: sessions.count(name)})


async def services_auth(request: web.Request) -> web.Response:
    """PUT/POST /data/services/auth with form `username`/`password`: a new session id."""
    form = await request.post()
    username = str(form.get("username") or form.get("j_username") or "")
    password = str(form.get("password") or form.get("j_password") or "")
    sessions = request.app[SESSIONS_KEY]
    user = sessions.authenticate(username, password)
    if user is None:
        return error_page(401, "Authentication failed.")
    session = sessions.create(user.username)
    request[NEW_SESSION_KEY] = session.id
    request[SESSION_KEY] = session
    return web.Response(text=session.id, content_type="text/plain")


async def whoami_text(request: web.Request) -> web.Response:
    """GET /data/auth: `User '<u>' is logged in`."""
    return web.Response(text=f"User '{user_of(request).username}' is logged in")


async def xapi_username(request: web.Request) -> web.Response:
    """GET /xapi/users/username."""
    return web.Response(text=user_of(request).username, content_type="text/plain")


async def xapi_profile(request: web.Request) -> web.Response:
    """GET /xapi/users/profile: a JSON profile of the current user."""
    user = user_of(request)
    ids = list(request.app[SESSIONS_KEY].users)
    return web.json_response(
        {
            "id": ids.index(user.username) + 1,
            "username": user.username,
            "firstName": user.firstname,
            "lastName": user.lastname,
            "email": user.email or f"{user.username}@example.org",
            "enabled": True,
            "verified": True,
            "admin": user.admin,
        }
    )


async def xapi_kill_sessions(request: web.Request) -> web.Response:
    """DELETE /xapi/users/active/{username} (admins): invalidated session ids."""
    if not user_of(request).admin:
        return tomcat_page(403, "Forbidden", "Access is denied")
    ids = request.app[SESSIONS_KEY].invalidate_user(request.match_info["username"])
    return web.json_response(ids)


async def build_info(request: web.Request) -> web.Response:
    """GET /xapi/siteConfig/buildInfo (open): all values strings, `version` the configured XNAT
    version; a 1.6 server has no `/xapi` (404)."""
    from xnatsync.emulator.xnat_version import XnatVersion  # here: this function is ours

    version = XnatVersion.parse(config_of(request).xnat_version)
    if not version.has_xapi:
        return web.Response(status=404, text="", content_type="text/plain")
    return web.json_response(
        {
            "version": version.text,
            "buildNumber": "emulator",
            "buildDate": "Wed Jan 10 12:00:00 UTC 2024",
            "sha": "0000000",
            "isDirty": "false",
            "timestamp": "1704888000000",
            "hostName": request.host,
            "displayHostName": request.host,
            "nodeId": config_of(request).site_id,
        }
    )


async def tokens(request: web.Request) -> web.Response:
    """GET /data/services/tokens/{op}[/…]: issue, validate, invalidate, show (§2.3, §11.5)."""
    user = user_of(request)
    sessions = request.app[SESSIONS_KEY]
    op = request.match_info["op"]
    args = [a for a in request.match_info.get("rest", "").split("/") if a]
    if op == "show":
        return web.json_response([t.as_json() for t in sessions.tokens_of(user.username)])
    if op == "issue":
        return _issue(sessions, user.username, user.admin, args)
    if op not in ("validate", "invalidate") or not args:
        fail(404, f"Unknown token operation {op}")
    token = sessions.known_token(args[0])
    if token is None:
        fail(404, "Token not found")
    if token.username != user.username and not user.admin:
        fail(403, "Only an admin can manage other users' tokens")
    if op == "invalidate":
        token.enabled = False
        return web.json_response({"result": "OK"})
    valid = sessions.token(token.alias) is not None and len(args) > 1 and args[1] == token.secret
    return json_text({"valid": token.username if valid else None})


def _issue(sessions: Sessions, username: str, admin: bool, args: list[str]) -> web.Response:
    if len(args) == 2 and args[0] == "user":
        if not admin:
            fail(403, "Only an admin user can issue tokens for other users")
        if args[1] not in sessions.users:
            fail(404, f"Unknown user {args[1]}")
        username = args[1]
    elif len(args) == 2:
        old = sessions.token(args[0])
        if old is None or old.secret != args[1]:
            fail(404, "Token not found")
        username = old.username
    elif args:
        fail(404, "Unknown token operation")
    return web.json_response(sessions.issue_token(username).as_json())


def add_routes(app: web.Application) -> None:
    """Register the auth, session, token, user and buildInfo routes and the cookie hook."""
    for method, handler in (("GET", jsession), ("POST", jsession), ("DELETE", logout)):
        add_data_route(app, method, "/JSESSION", handler)
    add_data_route(app, "DELETE", "/JSESSION/{sid}", logout)
    add_data_route(app, "PUT", "/services/auth", services_auth)
    add_data_route(app, "POST", "/services/auth", services_auth)
    add_data_route(app, "GET", "/auth", whoami_text)
    add_data_route(app, "GET", "/user/{username}/sessions", user_sessions)
    add_data_route(app, "DELETE", "/user/{username}/sessions", user_sessions)
    add_data_route(app, "GET", "/services/tokens/{op}", tokens)
    add_data_route(app, "GET", "/services/tokens/{op}/{rest:.+}", tokens)
    app.router.add_get("/xapi/siteConfig/buildInfo", build_info)
    app.router.add_get("/xapi/users/username", xapi_username)
    app.router.add_get("/xapi/users/profile", xapi_profile)
    app.router.add_delete("/xapi/users/active/{username}", xapi_kill_sessions)
    app.on_response_prepare.append(set_session_cookies)
