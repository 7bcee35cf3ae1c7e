"""XnatClient against a small in-process fake XNAT (aiohttp.web on 127.0.0.1, port 0).

The fake keeps server-side counts (logins, failed logins, requests seen) so the tests assert what
the server experienced, and its handlers can be scripted per path with faults: statuses,
truncated bodies, resets, stalls, HTML login pages.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import struct
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anyio
import pytest
from aiohttp import web

from tests.fakes import FakeTime
from xnatsync.errors import (
    AuthError,
    BadResponseError,
    NotFoundError,
    TransientRemoteError,
    TransportError,
    UnreachableError,
    UsageError,
    XnatSyncError,
)
from xnatsync.limits import Limits, Timeouts
from xnatsync.model import Experiment, Level
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

USER = "alice"
SENTINEL = "s3ntinel-PASSWORD-9f2c"
LOGIN_FAILED = (
    "<html><body><h1>HTTP Status 401</h1>Login attempt failed. Please try again.</body></html>"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    raw_path: str
    authorization: bool
    cookie: str | None
    user_agent: str


@dataclass
class FakeXnat:
    password: str = SENTINEL
    logins: int = 0
    failed_logins: int = 0
    logouts: int = 0
    sessions: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    listings: dict[str, object] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, list[Handler]] = field(default_factory=lambda: defaultdict(list))
    seen: list[Seen] = field(default_factory=list)
    closing: anyio.Event = field(default_factory=anyio.Event)
    hold_stale: int = 0  # hold 401 answers until this many stale requests have arrived
    stale_arrived: int = 0
    stale_gate: anyio.Event = field(default_factory=anyio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("POST", "/data/JSESSION", self.login)
        app.router.add_route("DELETE", "/data/JSESSION", self.logout)
        app.router.add_route("GET", "/data/{tail:.*}", self.get)
        return app

    def gets(self, path: str) -> int:
        return sum(1 for s in self.seen if s.method == "GET" and s.raw_path.split("?")[0] == path)

    def _record(self, request: web.Request) -> None:
        self.seen.append(
            Seen(
                request.method,
                request.rel_url.raw_path_qs,
                "Authorization" in request.headers,
                request.cookies.get("JSESSIONID"),
                request.headers.get("User-Agent", ""),
            )
        )

    async def login(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        header = request.headers.get("Authorization", "")
        user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        if header.startswith("Basic ") and (user, password) == (USER, self.password):
            self.logins += 1
            sid = secrets.token_hex(16).upper()
            self.sessions.add(sid)
            self.issued.append(sid)
            response = web.Response(text=sid, content_type="text/plain")
            response.set_cookie("JSESSIONID", sid, path="/")
            return response
        self.failed_logins += 1
        return web.Response(status=401, text=LOGIN_FAILED, content_type="text/html")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        self.logouts += 1
        self.sessions.discard(request.cookies.get("JSESSIONID", ""))
        return web.Response(text="")

    async def get(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        if request.cookies.get("JSESSIONID") not in self.sessions:
            self.stale_arrived += 1
            if self.stale_arrived >= self.hold_stale:
                self.stale_gate.set()
            await self.stale_gate.wait()
            return web.Response(status=401, text="<html><h3>Login</h3></html>")
        queue = self.faults.get(request.path)
        if queue:
            return await queue.pop(0)(request)
        if request.path in self.listings:
            return web.json_response(self.listings[request.path])
        if request.path in self.files:
            return web.Response(body=self.files[request.path])
        return web.Response(status=404, text="")


def answer(status: int, headers: dict[str, str] | None = None, text: str = "") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers, text=text, content_type="text/html")

    return handler


def truncated(body: bytes, at: int, *, reset: bool = False) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        await response.write(body[:at])
        assert request.transport is not None
        if reset:
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.close()
        return response

    return handler


def stall(fake: FakeXnat, first: bytes) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(first) * 2)})
        await response.prepare(request)
        await response.write(first)
        await fake.closing.wait()
        return response

    return handler


def result_set(rows: list[dict[str, str]], **extra: object) -> dict[str, object]:
    return {"ResultSet": {"Result": rows, **extra}}


@dataclass
class Server:
    fake: FakeXnat
    url: str
    time: FakeTime

    def client(self, password: str = SENTINEL, **kwargs: object) -> XnatClient:
        kwargs.setdefault("retry", RetryPolicy(attempts=4, backoff_base=0.5))
        kwargs.setdefault("rand", lambda: 1.0)
        return XnatClient(
            self.url,
            Credentials(USER, password),
            sleep=self.time.sleep,
            clock=self.time.clock,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    fake = FakeXnat()
    fake.listings["/data/projects"] = result_set(
        [{"ID": "P", "name": "Project", "URI": "/data/projects/P"}], totalRecords="1"
    )
    runner = web.AppRunner(fake.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(fake, f"http://{host}:{port}/", FakeTime())
    finally:
        fake.closing.set()
        fake.stale_gate.set()
        await runner.cleanup()


async def read_all(client: XnatClient, uri: str) -> bytes:
    async with client.download(uri) as body:
        return b"".join([chunk async for chunk in body.chunks(1000)])


# -- login and session ---------------------------------------------------------------------------


async def test_logs_in_once_and_reuses_the_session_cookie(server: Server) -> None:
    async with server.client() as client:
        for _ in range(3):
            assert await client.list_projects() == [
                {"ID": "P", "name": "Project", "URI": "/data/projects/P"}
            ]
        sid = server.fake.issued[0]
    assert server.fake.logins == 1
    data = [s for s in server.fake.seen if s.method == "GET"]
    assert len(data) == 3
    assert all(s.cookie == sid and not s.authorization for s in data)
    assert all(s.raw_path == "/data/projects?format=json" for s in data)
    assert all(s.user_agent.startswith("xnatsync/") for s in server.fake.seen)
    login = server.fake.seen[0]
    assert (login.method, login.authorization) == ("POST", True)
    assert server.fake.logouts == 1
    assert server.fake.sessions == set()


async def test_bad_credentials_fail_once_without_retry(server: Server) -> None:
    with pytest.raises(AuthError, match="rejected"):
        async with server.client(password="wrong"):
            pass
    assert (server.fake.failed_logins, server.fake.logins) == (1, 0)
    assert server.time.sleeps == []
    assert [s.method for s in server.fake.seen] == ["POST"]


async def test_stale_session_with_20_concurrent_downloads_relogs_in_once(server: Server) -> None:
    for i in range(20):
        server.fake.files[f"/data/experiments/E1/resources/9/files/f{i}.dcm"] = bytes([i]) * 3000
    results: dict[int, bytes] = {}

    async with server.client() as client:
        server.fake.sessions.clear()  # the server forgets the session mid-run
        server.fake.hold_stale = 20  # every worker sees the 401 of the same stale session

        async def fetch(i: int) -> None:
            results[i] = await read_all(client, f"/data/experiments/E1/resources/9/files/f{i}.dcm")

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(fetch, i)

    assert server.fake.stale_arrived == 20
    assert server.fake.logins == 2  # the first login and exactly one re-login
    assert results == {i: bytes([i]) * 3000 for i in range(20)}


async def test_failed_re_login_is_fatal_and_not_repeated(server: Server) -> None:
    server.fake.files["/data/experiments/E1/resources/9/files/a"] = b"a"
    errors: list[XnatSyncError] = []
    async with server.client() as client:
        server.fake.sessions.clear()
        server.fake.password = "changed-by-admin"

        async def fetch() -> None:
            try:
                await read_all(client, "/data/experiments/E1/resources/9/files/a")
            except AuthError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(fetch)
        with pytest.raises(AuthError):
            await client.list_projects()
    assert len(errors) == 10
    assert all(e.fatal for e in errors)
    assert (server.fake.logins, server.fake.failed_logins) == (1, 1)
    assert server.time.sleeps == []


async def test_401_after_re_login_is_fatal(server: Server) -> None:
    async def always_401(request: web.Request) -> web.StreamResponse:
        return web.Response(status=401)

    server.fake.faults["/data/projects"] = [always_401, always_401, always_401]
    async with server.client() as client:
        with pytest.raises(AuthError, match="after re-authentication"):
            await client.list_projects()
    assert server.fake.logins == 2
    assert server.fake.gets("/data/projects") == 2


# -- retries of listings -------------------------------------------------------------------------


async def test_5xx_on_a_listing_is_retried_with_backoff(server: Server) -> None:
    server.fake.faults["/data/projects"] = [answer(503), answer(500, text="<h3>boom</h3>")]
    async with server.client() as client:
        rows = await client.list_projects()
    assert rows[0]["ID"] == "P"
    assert server.time.sleeps == [0.5, 1.0]
    assert server.fake.gets("/data/projects") == 3
    assert client.retries == 2


async def test_429_retry_after_seconds_is_honoured_and_capped(server: Server) -> None:
    server.fake.faults["/data/projects"] = [
        answer(429, {"Retry-After": "7"}),
        answer(429, {"Retry-After": "86400"}),
    ]
    async with server.client(retry=RetryPolicy(retry_after_max=120.0), rand=lambda: 0.0) as c:
        await c.list_projects()
    assert server.time.sleeps == [7.0, 120.0]


async def test_429_retry_after_http_date(server: Server) -> None:
    date = datetime(2024, 6, 19, 12, 0, 0, tzinfo=UTC)
    headers = {
        "Date": format_datetime(date, usegmt=True),
        "Retry-After": format_datetime(date + timedelta(seconds=30), usegmt=True),
    }
    server.fake.faults["/data/projects"] = [answer(503, headers)]
    async with server.client(rand=lambda: 0.0) as client:
        await client.list_projects()
    assert server.time.sleeps == [30.0]


async def test_retries_are_bounded(server: Server) -> None:
    server.fake.faults["/data/projects"] = [answer(502) for _ in range(10)]
    async with server.client(retry=RetryPolicy(attempts=3, backoff_base=0.5)) as client:
        with pytest.raises(TransientRemoteError, match="HTTP 502") as info:
            await client.list_projects()
    assert info.value.status == 502
    assert server.fake.gets("/data/projects") == 3
    assert server.time.sleeps == [0.5, 1.0]


async def test_404_listing_is_not_retried(server: Server) -> None:
    async with server.client() as client:
        with pytest.raises(NotFoundError):
            await client.list_experiments("NOPE")
    assert server.fake.gets("/data/projects/NOPE/experiments") == 1
    assert server.time.sleeps == []


async def test_html_login_page_with_200_on_a_listing_is_a_bad_response(server: Server) -> None:
    server.fake.faults["/data/projects"] = [answer(200, text="<html><h3>Login</h3></html>")]
    async with server.client() as client:
        with pytest.raises(BadResponseError, match="Login"):
            await client.list_projects()
    assert server.fake.gets("/data/projects") == 1


async def test_truncated_listing_is_a_transport_error_and_retried(server: Server) -> None:
    body = json.dumps(server.fake.listings["/data/projects"]).encode()
    server.fake.faults["/data/projects"] = [truncated(body, 10)]
    async with server.client() as client:
        assert (await client.list_projects())[0]["ID"] == "P"
    assert len(server.time.sleeps) == 1


async def test_connection_refused_at_login_is_unreachable_after_retries(server: Server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = XnatClient(
        f"http://127.0.0.1:{port}",
        Credentials(USER, SENTINEL),
        retry=RetryPolicy(attempts=2),
        sleep=server.time.sleep,
        clock=server.time.clock,
    )
    with pytest.raises(UnreachableError, match=r"cannot reach .* cannot connect to") as info:
        async with client:
            pass
    assert isinstance(info.value.__cause__, TransportError)
    assert info.value.exit_code == 5
    assert "ssl" not in str(info.value)
    assert len(server.time.sleeps) == 1


async def test_listings_are_bounded_by_the_listing_limiter(server: Server) -> None:
    inflight = 0
    peak = 0
    release = anyio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        nonlocal inflight, peak
        inflight += 1
        peak = max(peak, inflight)
        if inflight >= 2:
            release.set()
        await release.wait()
        inflight -= 1
        return web.json_response(result_set([{"ID": request.path}]))

    for i in range(6):
        server.fake.faults[f"/data/projects/P{i}/subjects"] = [slow]
    results: list[list[dict[str, str]]] = []

    async def one(client: XnatClient, project: str) -> None:
        results.append(await client.list_subjects(project))

    async with (
        server.client(limits=Limits(listings=2)) as client,
        anyio.create_task_group() as tg,
    ):
        for i in range(6):
            tg.start_soon(one, client, f"P{i}")
    assert len(results) == 6
    assert peak == 2


# -- listings end to end -------------------------------------------------------------------------


async def test_experiments_and_their_files(server: Server) -> None:
    fake = server.fake
    fake.listings["/data/projects/P/experiments"] = result_set(
        [
            {
                "ID": "XNAT_E1",
                "label": "MR1",
                "project": "P",
                "subject_ID": "XNAT_S1",
                "subject_label": "sub01",
                "xsiType": "xnat:mrSessionData",
                "URI": "/data/experiments/XNAT_E1",
            }
        ],
        totalRecords="1",
    )
    fake.listings["/data/experiments/XNAT_E1/resources"] = result_set(
        [
            {
                "xnat_abstractresource_id": "101",
                "label": "DICOM",
                "category": "scans",
                "cat_id": "1",
                "cat_desc": "T1w",
            }
        ],
        title="Resources",
    )
    content = b"DICM" * 100
    fake.listings["/data/experiments/XNAT_E1/files"] = result_set(
        [
            {
                "Name": "a b+c.dcm",
                "Size": str(len(content)),
                "URI": "/data/experiments/XNAT_E1/scans/1/resources/101/files/"
                "sub%20dir/a%20b+c.dcm",
                "cat_ID": "101",
                "digest": "",
                "collection": "DICOM",
            }
        ],
        Columns=[{"key": "URI", "serverRoot": ""}],
    )
    fake.files["/data/experiments/XNAT_E1/scans/1/resources/101/files/sub dir/a b+c.dcm"] = content

    async with server.client() as client:
        (experiment,) = await client.list_experiments("P")
        assert experiment == Experiment(
            "XNAT_E1", "MR1", "P", "XNAT_S1", "sub01", "xnat:mrSessionData"
        )
        (remote,) = await client.list_experiment_files("P", experiment)
        assert (remote.level, remote.container, remote.resource, remote.path, remote.size) == (
            Level.SCAN,
            "1",
            "DICOM",
            "sub dir/a b+c.dcm",
            len(content),
        )
        async with client.download(remote.uri) as body:
            assert body.content_length == len(content)
            assert body.content_type == "application/octet-stream"
            assert b"".join([c async for c in body.chunks()]) == content

    listing_paths = [s.raw_path for s in fake.seen if s.method == "GET"]
    assert "/data/experiments/XNAT_E1/resources?format=json&all=true" in listing_paths
    assert "/data/experiments/XNAT_E1/files?format=json&all=true" in listing_paths
    assert (
        "/data/projects/P/experiments?format=json&columns="
        "ID,label,project,subject_ID,subject_label,xsiType,date,insert_date,last_modified"
    ) in listing_paths
    assert listing_paths[-1].endswith("/files/sub%20dir/a%20b%2Bc.dcm")


async def test_project_and_subject_files(server: Server) -> None:
    fake = server.fake
    res = {"xnat_abstractresource_id": "7", "label": "docs", "category": "resources"}
    fake.listings["/data/projects/P/resources"] = result_set([res])
    fake.listings["/data/projects/P/files"] = result_set(
        [
            {
                "Name": "r.txt",
                "Size": "3",
                "URI": "/data/projects/P/resources/7/files/r.txt",
                "cat_ID": "7",
            }
        ]
    )
    fake.listings["/data/projects/P/subjects/S1/resources"] = result_set([res])
    fake.listings["/data/projects/P/subjects/S1/files"] = result_set(
        [
            {
                "Name": "c.pdf",
                "Size": "3",
                "URI": "/data/projects/P/subjects/S1/resources/7/files/c.pdf",
                "cat_ID": "7",
            }
        ]
    )
    async with server.client() as client:
        (project_file,) = await client.list_project_files("P")
        (subject_file,) = await client.list_subject_files("P", "S1", "sub01")
        assert (
            await client.get_json("/data/projects", {"format": "json"})
            == fake.listings["/data/projects"]
        )
    assert (project_file.level, project_file.resource, project_file.path) == (
        Level.PROJECT,
        "docs",
        "r.txt",
    )
    assert (subject_file.level, subject_file.subject, subject_file.owner) == (
        Level.SUBJECT,
        "sub01",
        "S1",
    )


async def test_a_subject_is_listed_by_its_files_alone_when_they_name_their_resources(
    server: Server,
) -> None:
    """A subject's (or project's) own resources need no resources listing when the files rows
    name their resource (XNAT's ``collection``): one request, and none at all for a subject
    without resources beyond that one; a row without the name brings the resources listing
    back for the labels (the test above)."""
    fake = server.fake
    fake.listings["/data/projects/P/subjects/S1/files"] = result_set(
        [
            {
                "Name": "c.pdf",
                "Size": "3",
                "URI": "/data/projects/P/subjects/S1/resources/7/files/c.pdf",
                "collection": "consent",
                "cat_ID": "7",
            }
        ]
    )
    fake.listings["/data/projects/P/subjects/S2/files"] = result_set([])
    async with server.client() as client:
        (named,) = await client.list_subject_files("P", "S1", "sub01")
        assert await client.list_subject_files("P", "S2", "sub02") == []
    assert (named.level, named.resource, named.path) == (Level.SUBJECT, "consent", "c.pdf")
    assert [fake.gets(f"/data/projects/P/subjects/{s}/resources") for s in ("S1", "S2")] == [
        0,
        0,
    ]
    assert [fake.gets(f"/data/projects/P/subjects/{s}/files") for s in ("S1", "S2")] == [1, 1]


# -- downloads -----------------------------------------------------------------------------------


async def test_download_of_a_missing_file_is_not_found(server: Server) -> None:
    async with server.client() as client:
        with pytest.raises(NotFoundError):
            await read_all(client, "/data/experiments/E1/resources/9/files/missing")
    assert server.time.sleeps == []


@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("at", [0, 1, 2500, 4999])
async def test_truncated_or_reset_download_is_a_transport_error(
    server: Server, at: int, reset: bool
) -> None:
    path = "/data/experiments/E1/resources/9/files/big"
    server.fake.faults[path] = [truncated(b"x" * 5000, at, reset=reset)]
    async with server.client() as client:
        with pytest.raises(TransportError) as info:
            await read_all(client, path)
        assert info.value.retryable
        server.fake.files[path] = b"y" * 5000
        assert await read_all(client, path) == b"y" * 5000  # the client is still usable
    assert server.time.sleeps == []  # downloads are not retried by the client


async def test_read_stall_is_a_transport_error(server: Server) -> None:
    path = "/data/experiments/E1/resources/9/files/slow"
    server.fake.faults[path] = [stall(server.fake, b"z" * 1000)]
    async with server.client(timeouts=Timeouts(read_stall=0.2)) as client:
        with pytest.raises(TransportError, match="read stall"):
            await read_all(client, path)


async def test_download_refuses_uris_to_other_hosts(server: Server) -> None:
    async with server.client() as client:
        for uri in ("http://evil.example/data/x", "//evil.example/data/x", "data/x"):
            with pytest.raises(BadResponseError, match="not a server path"):
                await read_all(client, uri)
    assert server.fake.gets("/data/x") == 0


# -- pacing --------------------------------------------------------------------------------------


async def test_tps_limit_paces_requests(server: Server) -> None:
    async with server.client(limits=Limits(tps=2.0)) as client:
        for _ in range(5):
            await client.list_projects()
        assert server.time.now == pytest.approx(2.5)  # login at t=0, then one every 0.5 s


async def test_bandwidth_limit_paces_bytes(server: Server) -> None:
    path = "/data/experiments/E1/resources/9/files/f"
    server.fake.files[path] = b"b" * 5000
    async with server.client(limits=Limits(bandwidth=1000.0)) as client:
        assert await read_all(client, path) == b"b" * 5000
        assert server.time.now == pytest.approx(5.0)  # 5000 bytes at 1000 B/s, no free burst


# -- configuration and secrets -------------------------------------------------------------------


def test_constructor_does_no_io_and_refuses_credentials_in_the_url() -> None:
    client = XnatClient("https://xnat.example.org/xnat/", Credentials(USER, SENTINEL))
    assert client.base_url == "https://xnat.example.org/xnat"
    assert SENTINEL not in repr(client)
    with pytest.raises(UsageError) as info:
        XnatClient(f"https://{USER}:{SENTINEL}@xnat.example.org", Credentials(USER, SENTINEL))
    assert SENTINEL not in str(info.value)
    for bad in ("ftp://x", "xnat.example.org", "https://x/?a=b"):
        with pytest.raises(UsageError):
            XnatClient(bad, Credentials(USER, SENTINEL))


async def test_using_the_client_outside_async_with_is_an_error() -> None:
    client = XnatClient("http://127.0.0.1:9", Credentials(USER, SENTINEL))
    with pytest.raises(RuntimeError, match="async with"):
        await client.list_projects()


def _chain(exc: BaseException | None) -> str:
    texts = []
    while exc is not None:
        texts += [str(exc), repr(exc), str(getattr(exc, "url", ""))]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


async def test_secrets_never_reach_logs_or_errors(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    basic = base64.b64encode(f"{USER}:{SENTINEL}".encode()).decode()
    path = "/data/experiments/E1/resources/9/files/f"
    server.fake.files[path] = b"data"

    try:
        async with server.client(password=f"{SENTINEL}-wrong"):
            pass
    except AuthError as exc:
        texts.append(_chain(exc))

    server.fake.faults["/data/projects"] = [answer(500, text=f"password={SENTINEL}")]
    server.fake.faults[path] = [truncated(b"x" * 100, 10)]
    async with server.client() as client:
        await client.list_projects()
        server.fake.sessions.clear()
        for uri in (path, "/data/experiments/E1/resources/9/files/nope"):
            try:
                await read_all(client, uri)
            except XnatSyncError as exc:
                texts.append(_chain(exc))
        assert await read_all(client, path) == b"data"
        server.fake.password = "rotated"
        server.fake.sessions.clear()
        try:
            await client.list_projects()
        except AuthError as exc:
            texts.append(_chain(exc))
        texts.append(repr(client))

    assert len(texts) == 5
    captured = caplog.text + "\n".join(texts)
    assert "retrying" in caplog.text
    assert "re-authenticating" in caplog.text
    for secret in (SENTINEL, basic, *server.fake.issued):
        assert secret not in captured
