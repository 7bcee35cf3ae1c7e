"""`POST /data/search` of the emulator: the pure evaluator and the route (§6.1, §8.3.2)."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_exceptions import NotAppKeyWarning

from xnatsync.emulator import common, saved_search, schema, search_routes
from xnatsync.emulator.search import Bundle, Criterion, Field, Where, is_a, parse_bundle, run
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
