"""`POST /data/search` of the emulator: the pure evaluator and the route (§6.1, §8.3.2)."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_exceptions import NotAppKeyWarning

from tests.emulator.emuhelp import call, envelope, rows
from xnatsync.emulator import common, saved_search, schema, search_routes
from xnatsync.emulator.search import Bundle, Criterion, Field, Where, is_a, parse_bundle, run
from xnatsync.emulator.search_cache import SearchCache
from xnatsync.emulator.settings import User
from xnatsync.emulator.store import Store

Client = TestClient[web.Request, web.Application]
NS = 'xmlns:xdat="http://nrg.wustl.edu/security"'


def bundle_xml(
    root: str, fields: list[tuple[str, str]], criteria: str, method: str = "AND"
) -> bytes:
    search_fields = "".join(
        f"<xdat:search_field><xdat:element_name>{e}</xdat:element_name><xdat:field_ID>{f}"
        f"</xdat:field_ID><xdat:sequence>{i}</xdat:sequence><xdat:type>string</xdat:type>"
        f"<xdat:header>{f}</xdat:header></xdat:search_field>"
        for i, (e, f) in enumerate(fields)
    )
    return (
        f'<xdat:bundle ID="@{root}" {NS}><xdat:root_element_name>{root}</xdat:root_element_name>'
        f'{search_fields}<xdat:search_where method="{method}">{criteria}</xdat:search_where>'
        "</xdat:bundle>"
    ).encode()


def crit(field: str, op: str, value: str) -> str:
    return (
        f'<xdat:criteria override_value_formatting="0"><xdat:schema_field>{field}'
        f"</xdat:schema_field><xdat:comparison_type>{op}</xdat:comparison_type>"
        f"<xdat:value>{value}</xdat:value></xdat:criteria>"
    )


RECORDS = [
    {"xsi_type": "xnat:mrSessionData", "id": "E1", "label": "a_1", "project": "P",
     "date": "2024-01-02", "subject_id": "S1", "subject_label": "sub1"},
    {"xsi_type": "xnat:ctSessionData", "id": "E2", "label": "b_2", "project": "P",
     "date": "2024-03-04", "subject_id": "S2", "subject_label": "sub2"},
    {"xsi_type": "xnat:mrSessionData", "id": "E3", "label": "a_3", "project": "Q",
     "date": "2023-12-31", "subject_id": "S3", "subject_label": "sub3"},
]  # fmt: skip


def test_type_hierarchy() -> None:
    assert is_a("xnat:mrSessionData", "xnat:imageSessionData")
    assert is_a("xnat:mrSessionData", "xnat:experimentData")
    assert not is_a("xnat:mrScanData", "xnat:experimentData")


def test_parse_and_run_with_dates_likes_and_nesting() -> None:
    doc = bundle_xml(
        "xnat:imageSessionData",
        [("xnat:imageSessionData", "LABEL"), ("xnat:subjectData", "SUBJECT_LABEL")],
        crit("xnat:imageSessionData/project", "=", "P")
        + '<xdat:child_set method="OR">'
        + crit("xnat:imageSessionData/DATE", ">=", "03/01/2024")
        + crit("xnat:imageSessionData/LABEL", " LIKE ", "a%")
        + "</xdat:child_set>",
    )
    bundle = parse_bundle(doc)
    assert bundle.root == "xnat:imageSessionData"
    columns, rows = run(bundle, RECORDS)
    assert [c["key"] for c in columns] == ["label", "xnat_subjectdata_subject_label"]
    assert [r["session_id"] for r in rows] == ["E1", "E2"]
    assert rows[0]["xnat_subjectdata_subject_label"] == "sub1"


def test_xpath_fields_like_xnatpy_and_between() -> None:
    bundle = Bundle(
        "xnat:mrSessionData",
        (Field("xnat:mrSessionData", "xnat:mrSessionData/subject_ID", "url", "xs:string"),),
        Where(
            "AND", (Criterion("xnat:mrSessionData/date", "BETWEEN", "2023-01-01 AND 2023-12-31"),)
        ),
    )
    _, rows = run(bundle, RECORDS)
    assert rows == [{"subject_id": "S3", "session_id": "E3", "project": "Q", "label": "a_3"}]


@web.middleware
async def _stub_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotAppKeyWarning)
        request[common.USER_KEY] = User(
            request.headers.get("X-Test-User", "admin"),
            "x",
            admin="X-Test-User" not in request.headers,
        )
    return await handler(request)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    store = Store(tmp_path)
    store.create_project("P1", owner="admin")
    store.create_project("HIDDEN", owner="admin")
    store.ensure_experiment("P1", "S1", "E_one", date="2024-01-02")
    store.ensure_experiment("P1", "S2", "E_two", date="2024-05-06")
    store.ensure_experiment("HIDDEN", "S9", "E_hidden", date="2024-05-06")
    app = web.Application(middlewares=[_stub_auth])
    app[common.STORE_KEY] = store
    for module in (schema, saved_search, search_routes):
        module.add_routes(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_search_route_json_csv_and_errors(client: Client) -> None:
    doc = bundle_xml(
        "xnat:mrSessionData",
        [
            ("xnat:mrSessionData", "LABEL"),
            ("xnat:mrSessionData", "DATE"),
            ("xnat:mrSessionData", "PROJECT"),
        ],
        crit("xnat:mrSessionData/DATE", ">=", "2024-02-01"),
    )
    resp = await client.post(
        "/data/search?format=json", data=doc, headers={"Content-Type": "text/xml"}
    )
    assert resp.status == 200
    result = (await resp.json())["ResultSet"]
    assert result["rootElementName"] == "xnat:mrSessionData"
    assert result["totalRecords"] == "2"
    assert sorted(r["label"] for r in result["Result"]) == ["E_hidden", "E_two"]
    assert [c["key"] for c in result["Columns"]] == ["label", "date", "project"]
    resp = await client.post("/data/search?format=csv", data=doc, headers={"X-Test-User": "nobody"})
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert rows == []  # a user who can read nothing finds nothing
    assert (await client.post("/data/search", data=b"<nope/>")).status == 422
    assert (await client.post("/data/search", data=b"not xml")).status == 422
    assert (await client.get("/data/search")).status == 405
    resp = await client.post("/data/search?format=html", data=doc)
    assert resp.status == 200
    assert "<td>E_two</td>" in await resp.text()
    resp = await client.post("/data/search?format=yaml", data=doc)
    assert resp.status == 400
    assert "yaml" in await resp.text()
    resp = await client.post("/data/search?format=json&cache=true&limit=many", data=doc)
    assert resp.status == 500  # XNAT's Integer.parseInt failure
    assert "limit" in await resp.text()


# --- cached searches (POST ?cache=true, GET /data/search/{ID}) — TestSearch.testBasicSearch,
# TestSearchPaginationAndCaching, TestTableNamingLimits.testLongSiteSearch -------------------

DEMO_MR = bundle_xml(
    "xnat:mrSessionData",
    [("xnat:mrSessionData", "LABEL"), ("xnat:mrSessionData", "DATE")],
    crit("xnat:mrSessionData/PROJECT", "=", "DEMO"),
)
DEMO_MR_DATES = ["2024-01-01", "2024-01-02", "2024-01-03"]  # DEMO01_MR1, DEMO01_MR2, DEMO02_MR1


async def cache_search(session: aiohttp.ClientSession, doc: bytes, **params: str) -> dict[str, Any]:
    """POST a bundle with cache=true&refresh=true (grxnat's cacheSearch); the envelope."""
    query = {"format": "json", "cache": "true", "refresh": "true", **params}
    async with session.post("/data/search", params=query, data=doc) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
    envelope: dict[str, Any] = body["ResultSet"]
    return envelope


async def test_cached_search_has_an_id_and_pages_sorted(admin: aiohttp.ClientSession) -> None:
    cached = await cache_search(admin, DEMO_MR)
    assert cached["ID"]
    assert cached["totalRecords"] == "3"
    assert cached["Result"] == []  # XNAT reads the new table back with LIMIT 0 unless asked
    assert [c["key"] for c in cached["Columns"]] == ["label", "date"]
    path = f"/data/search/{cached['ID']}"
    ascending = await rows(admin, path, sortBy="date", sortOrder="ASC")
    assert [r["date"] for r in ascending] == DEMO_MR_DATES
    assert all(r["session_id"].startswith("XNAT_E") for r in ascending)
    descending = await rows(admin, path, sortBy="date", sortOrder="DESC")
    assert [r["session_id"] for r in descending] == [r["session_id"] for r in ascending][::-1]
    page = await rows(admin, path, sortBy="date", offset="1", limit="1")
    assert [r["date"] for r in page] == DEMO_MR_DATES[1:2]
    assert (await envelope(admin, path))["ID"] == cached["ID"]
    counts = await envelope(admin, f"{path}/project")  # grxnat's retrieveCachedSearchColumn
    assert (counts["COLUMN"], counts["Result"]) == ("project", [{"values": "DEMO", "count": "3"}])
    assert (await call(admin, "GET", f"{path}/nope"))[0] == 410
    limited = await cache_search(admin, DEMO_MR, limit="2")
    assert (len(limited["Result"]), limited["totalRecords"]) == (2, "3")
    assert limited["ID"] != cached["ID"]  # refresh=true makes a new table
    async with admin.get(path, params={"format": "csv", "sortBy": "date"}) as response:
        text = await response.text()
    assert [r["date"] for r in csv.DictReader(io.StringIO(text))] == DEMO_MR_DATES


async def test_cached_search_is_a_snapshot(admin: aiohttp.ClientSession) -> None:
    cached = await cache_search(admin, DEMO_MR)
    url = "/data/projects/DEMO/subjects/DEMO03/experiments/DEMO03_MR9"
    async with admin.put(url, params={"xsiType": "xnat:mrSessionData"}) as response:
        assert response.status == 201
    assert len(await rows(admin, f"/data/search/{cached['ID']}")) == 3
    async with admin.post("/data/search", params={"format": "json"}, data=DEMO_MR) as response:
        assert (await response.json())["ResultSet"]["totalRecords"] == "4"


async def test_cached_search_belongs_to_its_user(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    cached = await cache_search(admin, DEMO_MR)
    path = f"/data/search/{cached['ID']}"
    assert await call(user, "GET", path, params={"format": "json"}) == (200, "")  # as XNAT
    status, body = await call(admin, "GET", "/data/search/xs_no_such_table")
    assert status == 500
    assert "xs_no_such_table" in body
    status, body = await call(admin, "GET", path, params={"offset": "two"})
    assert status == 422
    assert "offset" in body
    status, body = await call(admin, "GET", path, params={"sortBy": "nope"})
    assert status == 410
    assert "nope" in body
    assert (await call(admin, "GET", path, params={"sortBy": "date", "sortOrder": "UP"}))[0] == 410


async def test_bundle_id_reuses_the_callers_cache_unless_refreshed(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    named = DEMO_MR.replace(b'ID="@xnat:mrSessionData"', b'ID="MY_SEARCH"')
    first = await cache_search(admin, named, refresh="false")
    again = await cache_search(admin, named, refresh="false")
    assert again["ID"] == first["ID"]
    assert again["totalRecords"] == "3"
    url = "/data/projects/DEMO/subjects/DEMO03/experiments/DEMO03_MR9"
    async with admin.put(url, params={"xsiType": "xnat:mrSessionData"}) as response:
        assert response.status == 201
    async with admin.post("/data/search", params={"format": "json"}, data=named) as response:
        assert (await response.json())["ResultSet"]["totalRecords"] == "3"  # the snapshot
    async with user.post("/data/search", params={"format": "json"}, data=named) as response:
        assert (await response.json())["ResultSet"]["totalRecords"] == "4"  # not user's cache
    fresh = await cache_search(admin, named)
    assert fresh["ID"] != first["ID"]
    assert fresh["totalRecords"] == "4"


def test_cache_is_bounded_and_forgets_idle_tables() -> None:
    now = [0.0]
    cache = SearchCache(limit=2, idle=3600.0, clock=lambda: now[0])
    a = cache.put("admin", "", "xnat:mrSessionData", [], [{"id": "1"}])
    b = cache.put("admin", "S", "xnat:mrSessionData", [], [])
    assert cache.get(a.id) is a  # touched: b is now the least recently used
    c = cache.put("user", "S", "xnat:mrSessionData", [], [])
    assert len(cache) == 2
    assert cache.get(b.id) is None
    assert cache.by_search("user", "S") is c
    assert cache.by_search("admin", "S") is None
    now[0] = 3599.0
    assert cache.get(c.id) is c
    now[0] = 3600.0 + 3599.0
    assert cache.get(a.id) is None
    assert cache.get(c.id) is c
