"""The XNAT HTTP client: one aiohttp session, listings with retries, streamed downloads.

Invariants:

* No I/O in the constructor; ``async with client`` opens the session and logs in once, and on
  exit logs out and closes the session.
* ``http.transport_errors`` is the one place aiohttp and OS exceptions become xnatsync errors, with
  redacted messages and no chained aiohttp exception (its text embeds URLs).
* Credentials travel only in the login request's ``Authorization`` header; later requests carry
  the ``JSESSIONID`` cookie. No URL carries credentials, no cookie jar or ``trust_env`` is used.
* A 401, or a redirect to the login page, triggers at most one single-flight re-login per
  request (``auth.Authenticator``).
* Listings are retried per ``RetryPolicy`` and run at most ``limits.listings`` at a time
  (``listing_limiter``); the limiter is held per attempt, not across the backoff pause.
* Downloads are not retried here (a body can fail midway; the transfer layer retries the file).
* No total timeout: ``sock_connect`` and ``sock_read`` (read stall) bound each step instead.
* Logged in with an alias token (a UUID user name), the client takes a fresh token through the
  live session at login and again after half of each token's lifetime (the server's setting),
  before any request that finds it due, so re-logins never use an expired one; tokens it issued
  are invalidated once replaced and at exit, the user's own is left alone (``_TokenKeeper``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

import aiohttp
import anyio
from yarl import URL

from xnatsync.errors import (
    AuthError,
    BadResponseError,
    NotFoundError,
    PermissionDeniedError,
    RemoteError,
    TransientRemoteError,
    TransportError,
    UnreachableError,
    XnatSyncError,
    first_error,
    redact,
)
from xnatsync.limits import Limits, Timeouts
from xnatsync.model import Experiment, RemoteFile
from xnatsync.retry import RetryPolicy
from xnatsync.retrying import retrying
from xnatsync.version import __version__
from xnatsync.xnat import parse, routes
from xnatsync.xnat.auth import (
    Authenticator,
    Credentials,
    issued_token,
    looks_like_alias,
    session_id_from_login,
)
from xnatsync.xnat.http import (
    Body,
    OwnerListing,
    request_path,
    sent_to_login,
    transport_errors,
)
from xnatsync.xnat.pacing import bandwidth_pacer, requests_pacer

USER_AGENT = f"xnatsync/{__version__}"
DEFAULT_LIMITS = Limits()
DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()
ERROR_SNIPPET_BYTES = 2048
NOT_XNAT = frozenset({400, 404, 405, 501})  # what a login POST to /data/JSESSION gets elsewhere
RENEW_AFTER = 0.5  # of a token's lifetime
RENEW_UNKNOWN = 3600.0  # seconds between renewals when the server does not say a lifetime

T = TypeVar("T")
Request = tuple[Mapping[str, str], Any]  # headers and an aiohttp payload, made per send
Chunks = Callable[[], AsyncIterator[bytes | memoryview]]  # an upload's body, afresh per send
log = logging.getLogger("xnatsync.xnat")


class XnatClient:
    """One XNAT server, one aiohttp session, one login."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        limits: Limits = DEFAULT_LIMITS,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        ssl: ssl_module.SSLContext | bool | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = routes.check_base_url(base_url)
        self.limits = limits
        self._credentials = credentials
        self._timeouts = timeouts
        self._retry = retry
        self._ssl: ssl_module.SSLContext | bool = True if ssl is None else ssl
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self.listing_limiter = anyio.CapacityLimiter(limits.listings)
        self.retries = 0  # request retries so far (for the run summary)
        self._tps = requests_pacer(limits.tps, clock=clock, sleep=sleep)
        self._bandwidth = bandwidth_pacer(limits.bandwidth, clock=clock, sleep=sleep)
        self._auth = Authenticator(self._login)
        self._http: aiohttp.ClientSession | None = None
        self._token_due: float | None = None  # clock() when the alias token is renewed next
        self._token_lock = anyio.Lock()
        self._issued: str | None = None  # alias of the token this client issued and uses

    def __repr__(self) -> str:
        return f"XnatClient({self.base_url!r}, {self._credentials!r})"

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._http is not None:
            raise RuntimeError("XnatClient is already open")
        t = self._timeouts
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.limits.connections, ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=t.pool, sock_connect=t.connect, sock_read=t.read_stall
            ),
            headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        try:
            await self._auth.login()
            if looks_like_alias(self._credentials.username):
                await self._renew_token()
        except (TransportError, TransientRemoteError) as exc:
            await self._close()
            raise UnreachableError(
                f"cannot reach the XNAT server at {self.base_url}: {exc}"
            ) from exc
        except RemoteError as exc:
            await self._close()
            if exc.status not in NOT_XNAT:
                raise
            raise UnreachableError(
                f"{self.base_url} is not an XNAT server (or not its base URL): a login there "
                f"was answered HTTP {exc.status}"
            ) from exc
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._logout()
        finally:
            await self._close()

    async def _close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # -- one request ------------------------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, str] | None = None) -> URL:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"not a path below the server URL: {path!r}")
        url = URL(self.base_url + path, encoded=True)
        return url.update_query(dict(params)) if params else url

    async def _send(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> aiohttp.ClientResponse:
        if self._http is None:
            raise RuntimeError("XnatClient used outside 'async with'")
        if self._tps is not None:
            await self._tps.acquire()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", method, redact(str(url)))
        with transport_errors(method, url, self._timeouts):
            return await self._http.request(method, url, headers=headers, data=data)

    async def _fail(self, method: str, url: URL, response: aiohttp.ClientResponse) -> NoReturn:
        """Raise the typed error of a failed response (reading a short body for the message)."""
        try:
            with transport_errors(method, str(url), self._timeouts):
                snippet = await response.content.read(ERROR_SNIPPET_BYTES)
        finally:
            response.release()
        parse.raise_for_status(
            response.status, response.headers, snippet, str(url), now=time.time()
        )
        raise AssertionError(f"HTTP {response.status} is not an error status")

    async def _open(
        self, method: str, url: URL, body: Callable[[], Request] | None = None
    ) -> aiohttp.ClientResponse:
        """A successful response with the session cookie; on 401 (or a redirect to the login
        page, XNAT's other way of saying the session is gone) re-login once and resend. A
        request body comes from ``body``, called afresh for each send."""
        self._auth.check()
        if self._token_due is not None and self._clock() >= self._token_due:
            await self._renew_token()
        reauthenticated = False
        while True:
            generation = self._auth.generation
            headers, data = body() if body is not None else ({}, None)
            headers = {**self._auth.cookie(), **headers}
            response = await self._send(method, url, headers=headers, data=data)
            if response.status != 401 and not sent_to_login(response, url):
                break
            response.release()
            if reauthenticated:
                error = AuthError(
                    f"{method} {redact(str(url))}: session rejected after re-authentication"
                )
                self._auth.poison(error)
                raise error
            log.info("session rejected (401 or login page); re-authenticating")
            await self._auth.refresh(generation)
            reauthenticated = True
        if response.status >= 400:
            await self._fail(method, url, response)
        return response

    async def _read(
        self, method: str, url: URL, body: Callable[[], Request] | None = None
    ) -> bytes:
        response = await self._open(method, url, body)
        try:
            with transport_errors(method, str(url), self._timeouts):
                return await response.read()
        finally:
            response.release()

    def _on_retry(self, url: URL) -> Callable[[int, XnatSyncError, float], None]:
        def report(attempt: int, error: XnatSyncError, delay: float) -> None:
            self.retries += 1
            log.warning(
                "retrying %s in %.2f s (attempt %d of %d failed: %s)",
                redact(str(url)),
                delay,
                attempt,
                self._retry.attempts,
                error,
            )

        return report

    async def _get_listing(self, url: URL, parse_body: Callable[[bytes], T]) -> T:
        """GET and parse, retried as one: a listing cut short in transit is fetched again."""

        async def attempt() -> T:
            async with self.listing_limiter:
                body = await self._read("GET", url)
            return parse_body(body)

        return await self._retrying(url, attempt)

    async def _retrying(self, url: URL, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt`` under this client's retry policy, injected clock and sleep."""
        return await retrying(
            self._retry,
            lambda _number: attempt(),
            sleep=self._sleep,
            rand=self._rand,
            clock=self._clock,
            on_retry=self._on_retry(url),
        )

    # -- session --------------------------------------------------------------------------------

    async def _login(self) -> str:
        url = self._url(routes.SESSION)
        basic = {"Authorization": self._credentials.authorization()}

        async def attempt() -> str:
            response = await self._send("POST", url, headers=basic)
            if response.status == 401:
                response.release()
                raise AuthError(
                    f"login to {self.base_url} as {self._credentials.username!r} was rejected "
                    "(HTTP 401): check the username and password or alias token"
                )
            if response.status >= 400:
                await self._fail("POST", url, response)
            try:
                with transport_errors("POST", str(url), self._timeouts):
                    body = await response.read()
            finally:
                response.release()
            cookies = {name: morsel.value for name, morsel in response.cookies.items()}
            return session_id_from_login(body, cookies)

        session_id = await self._retrying(url, attempt)
        log.info("logged in to %s as %r", self.base_url, self._credentials.username)
        return session_id

    async def _renew_token(self) -> None:
        """Take a fresh alias token through the live session (single-flight); re-logins use it
        from now on. A failure is logged, not raised: the token in hand still works until it
        expires, and the next request that finds the renewal due tries again."""
        async with self._token_lock:
            if self._token_due is not None and self._clock() < self._token_due:
                return  # another task renewed it while this one waited
            self._token_due = None  # the requests below must not renew again
            retry_in = RENEW_UNKNOWN
            try:
                body = await self._read("GET", self._url(*routes.issue_token()))
                token = issued_token(body)
            except (PermissionDeniedError, NotFoundError) as exc:
                log.warning(
                    "this server does not renew alias tokens (%s): the run keeps the one it "
                    "was given, which expires at the server's set time", exc,
                )  # fmt: skip
                return
            except XnatSyncError as exc:
                if exc.fatal:
                    raise
                log.warning("could not renew the alias token (%s); trying again later", exc)
            else:
                replaced, self._issued = self._issued, token.alias
                self._credentials = Credentials(token.alias, token.secret)
                if token.lifetime is not None:
                    retry_in = token.lifetime * RENEW_AFTER
                log.info("alias token renewed (lifetime %s s)", token.lifetime)
                if replaced is not None:
                    await self._invalidate(replaced)
            self._token_due = self._clock() + retry_in

    def hand_over(self) -> Credentials:
        """The credentials a client replacing this one should log in with: the alias token this
        one renewed (kept valid: closing no longer invalidates it), or those it was given. A
        daemon that reopens its client after an outage would otherwise log in with a token
        that has long expired."""
        self._issued = None
        return self._credentials

    async def _invalidate(self, alias: str) -> None:
        """Disable a token this client issued (best effort: it expires anyway)."""
        try:
            await self._read("GET", self._url(*routes.invalidate_token(alias)))
        except XnatSyncError as exc:
            log.warning("could not invalidate an alias token this run issued: %s", exc)
            if exc.fatal:
                raise

    async def _logout(self) -> None:
        """Best effort: a failed logout is logged, never raised over the run's own outcome."""
        if self._http is None or self._auth.session_id is None:
            return
        url = self._url(routes.SESSION)
        with anyio.move_on_after(self._timeouts.connect, shield=True):
            if self._issued is not None:
                self._token_due = None
                issued, self._issued = self._issued, None
                with contextlib.suppress(XnatSyncError):  # logged by _invalidate
                    await self._invalidate(issued)
            try:
                response = await self._send("DELETE", url, headers=self._auth.cookie())
                response.release()
                if response.status >= 400:
                    log.warning("logout from %s answered HTTP %d", self.base_url, response.status)
            except XnatSyncError as exc:
                log.warning("logout from %s failed: %s", self.base_url, exc)
        self._auth.forget()

    # -- public API -----------------------------------------------------------------------------

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET an encoded path below the base URL and decode JSON (retried, listing-limited)."""
        url = self._url(path, params)

        def decode(body: bytes) -> Any:
            try:
                return json.loads(body)
            except (UnicodeDecodeError, ValueError) as exc:
                raise BadResponseError(
                    f"expected JSON from {redact(str(url))}, got: {parse.summarise(body)!r}",
                    url=redact(str(url)),
                ) from exc

        return await self._get_listing(url, decode)

    async def list_rows(self, route: routes.Route) -> list[dict[str, str]]:
        """The rows of any ``ResultSet`` listing."""
        url = self._url(route.path, route.params)
        return await self._get_listing(url, lambda body: parse.parse_result_set(body, url=str(url)))

    async def list_projects(self) -> list[dict[str, str]]:
        return await self.list_rows(routes.projects())

    async def check_writable(self, project: str) -> None:
        """``PermissionDeniedError`` unless the user may add data to ``project`` (a project
        they may only read): asked before anything is sent, since a refused upload or import
        answers 403 only after its whole body."""
        rows = await self.list_rows(routes.writable_projects())
        if not any(project in (row.get("id"), row.get("ID")) for row in rows):
            raise PermissionDeniedError(
                f"project {project}: this user may not add data to it (read-only access); "
                "nothing was sent"
            )

    async def list_subjects(self, project: str) -> list[dict[str, str]]:
        return await self.list_rows(routes.subjects(project))

    async def list_experiments(self, project: str) -> list[Experiment]:
        return parse.experiments_from_rows(
            project, await self.list_rows(routes.experiments(project))
        )

    async def recent_experiments(self, days: int, limit: int) -> list[dict[str, str]]:
        """The rows of ``/data/experiments?recent=`` (lower-case columns, site-wide)."""
        return await self.list_rows(routes.recent_experiments(days, limit))

    async def saved_search(self, search_id: str) -> bytes:
        """A stored search's XML document (``NotFoundError`` if there is none by that ID, or
        the user may not see it)."""
        url = self._url(*routes.saved_search(search_id))
        return await self._get_listing(url, lambda body: body)

    async def search(self, document: bytes) -> list[dict[str, str]]:
        """The result rows of a search document (a read: retried like a listing)."""
        url = self._url(*routes.search())

        def body() -> Request:
            return {"Content-Type": "text/xml"}, document

        async def attempt() -> list[dict[str, str]]:
            async with self.listing_limiter:
                answer = await self._read("POST", url, body)
            return parse.parse_result_set(answer, url=str(url))

        return await self._retrying(url, attempt)

    async def _owner_listing(
        self,
        resources: routes.Route,
        files: routes.Route,
        build: Callable[[list[dict[str, str]], list[dict[str, str]]], list[RemoteFile]],
    ) -> OwnerListing:
        """Both listings of one owner, fingerprinted; the rows are built only if asked for.
        The two requests go at once: on a long path an owner's listing costs one round trip
        and one server time, not two."""
        res_url = self._url(resources.path, resources.params)
        files_url = self._url(files.path, files.params)
        got: dict[URL, tuple[bytes, Any]] = {}

        async def get(url: URL) -> None:
            got[url] = await self._get_listing(url, self._document(url))

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(get, res_url)
                tg.start_soon(get, files_url)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        (res_body, res_doc), (files_body, files_doc) = got[res_url], got[files_url]
        fingerprint = hashlib.md5(res_body + b"\0" + files_body, usedforsecurity=False)

        def parsed() -> list[RemoteFile]:
            res_rows = parse.rows_of(res_doc, url=str(res_url))
            return build(res_rows, parse.rows_of(files_doc, url=str(files_url)))

        return OwnerListing(fingerprint.hexdigest(), parsed)

    async def _object_listing(
        self,
        resources: routes.Route,
        files: routes.Route,
        build: Callable[[list[dict[str, str]], list[dict[str, str]]], list[RemoteFile]],
    ) -> OwnerListing:
        """The files of a project's or a subject's own resources: their files listing alone,
        whose rows name each file's resource (``collection``, xnat-api §3.6), unless a row
        lacks that name: then the resources listing too, for the labels. An object-level
        resource has no scan or assessor to be placed in, so the resources listing adds
        nothing else there, and most subjects have no resources at all: one request a subject
        instead of two (10,000 fewer in a full listing of a project of 10,000 subjects)."""
        files_url = self._url(files.path, files.params)
        files_body, files_doc = await self._get_listing(files_url, self._document(files_url))
        file_rows = parse.rows_of(files_doc, url=str(files_url))
        res_body, res_rows = b"", []
        if not parse.resources_named(file_rows):
            res_url = self._url(resources.path, resources.params)
            res_body, res_doc = await self._get_listing(res_url, self._document(res_url))
            res_rows = parse.rows_of(res_doc, url=str(res_url))
        fingerprint = hashlib.md5(res_body + b"\0" + files_body, usedforsecurity=False)
        return OwnerListing(fingerprint.hexdigest(), lambda: build(res_rows, file_rows))

    @staticmethod
    def _document(url: URL) -> Callable[[bytes], tuple[bytes, Any]]:
        return lambda body: (body, parse.decode_json(body, url=str(url)))

    async def experiment_listing(self, project: str, experiment: Experiment) -> OwnerListing:
        """Every file of one session: ``resources?all=true`` joined with ``files?all=true``."""
        return await self._owner_listing(
            routes.experiment_resources(experiment.id),
            routes.experiment_files(experiment.id),
            lambda res, files: parse.files_from_listing(project, experiment, res, files),
        )

    async def project_listing(self, project: str) -> OwnerListing:
        return await self._object_listing(
            routes.project_resources(project),
            routes.project_files(project),
            lambda res, files: parse.project_files_from_listing(project, res, files),
        )

    async def subject_listing(
        self, project: str, subject_id: str, subject_label: str
    ) -> OwnerListing:
        return await self._object_listing(
            routes.subject_resources(project, subject_id),
            routes.subject_files(project, subject_id),
            lambda res, files: parse.subject_files_from_listing(
                project, subject_id, subject_label, res, files
            ),
        )

    async def list_experiment_files(self, project: str, experiment: Experiment) -> list[RemoteFile]:
        return (await self.experiment_listing(project, experiment)).files()

    async def list_project_files(self, project: str) -> list[RemoteFile]:
        return (await self.project_listing(project)).files()

    async def list_subject_files(
        self, project: str, subject_id: str, subject_label: str
    ) -> list[RemoteFile]:
        return (await self.subject_listing(project, subject_id, subject_label)).files()

    async def put_object(self, route: routes.Route) -> str:
        """PUT that creates or updates an object from query parameters (a subject, session or
        scan: xnat-api §4.5); idempotent, so retried like a listing. The answer's text (an
        accession ID for subjects and sessions)."""
        url = self._url(route.path, route.params)

        async def attempt() -> str:
            return (await self._read("PUT", url)).decode("utf-8", "replace").strip()

        return await self._retrying(url, attempt)

    async def upload(
        self,
        route: routes.Route,
        size: int,
        chunks: Chunks,
    ) -> str:
        """PUT one file's bytes into a resource (xnat-api §4.4): in the body with a known
        ``Content-Length`` (XNAT refuses chunked in-body uploads), or, for an empty file (which
        XNAT refuses in-body), as a multipart part. ``chunks`` gives the bytes afresh for each
        send (a re-login resends). Not retried here: after a failure the caller looks at the
        resource before sending again. Returns the answer's text (``{"duplicates": …}`` when
        the file existed and was not replaced)."""
        inbody = {"inbody": "true"} if size else {}  # multipart with inbody=true is refused
        url = self._url(route.path, {**route.params, **inbody})
        name = route.path.rsplit("/", 1)[-1]

        def body() -> Request:
            if size == 0:
                form = aiohttp.FormData()
                form.add_field("file", b"", filename=name, content_type="application/octet-stream")
                return {}, form
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            return headers, chunks()

        return (await self._read("PUT", url, body)).decode("utf-8", "replace")

    async def import_zip(
        self,
        route: routes.Route,
        size: int,
        chunks: Chunks,
    ) -> str:
        """POST a DICOM zip of known length to the import service (xnat-api §5.1); the answer's
        text (the session's URI). Not retried here (the caller looks before sending again). A
        refusal in one of XNAT's "busy, try later" words (§12) is a ``TransientRemoteError``."""
        url = self._url(route.path, route.params)

        def body() -> Request:
            return {"Content-Type": "application/zip", "Content-Length": str(size)}, chunks()

        try:
            return (await self._read("POST", url, body)).decode("utf-8", "replace")
        except RemoteError as exc:
            if isinstance(exc, TransientRemoteError) or not parse.import_busy(exc.status, str(exc)):
                raise
            raise TransientRemoteError(str(exc), status=exc.status, url=exc.url) from exc

    def download(self, uri: str) -> AbstractAsyncContextManager[Body]:
        """GET a listed file URI; status checked, 401 → one re-login; no other retries."""
        return self._download(self._url(request_path(uri)))

    def download_zip(self, resource: str) -> AbstractAsyncContextManager[Body]:
        """GET every file of a resource (its listed URI) as one zip, like ``download``; stored,
        not deflated (``compression=0``): imaging data hardly compresses, and inflating costs
        CPU on both sides."""
        params = {"format": "zip", "compression": "0"}
        return self._download(self._url(request_path(f"{resource}/files"), params))

    @asynccontextmanager
    async def _download(self, url: URL) -> AsyncIterator[Body]:
        response = await self._open("GET", url)
        try:
            yield Body(response, str(url), self._timeouts, self._bandwidth)
        except BaseException:
            response.close()
            raise
        else:
            response.release()
