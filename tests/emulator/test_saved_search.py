"""Stored searches at /data/search/saved… (xnat-api §6.1, XNAT's SavedSearchResource and
SavedSearchListResource; grxnat's SearchSubinterface and TestSearchPaginationAndCaching for the
calls), their persistence, and a sweep of the search routes of §9."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree

import aiohttp
import pytest

from tests.emulator.emuhelp import call, envelope, rows
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig

XDAT = "{http://nrg.wustl.edu/security}"
MR_LABELS = ["DEMO01_MR1", "DEMO01_MR2", "DEMO02_MR1"]


def bundle(search_id: str, criteria: str = "", attrs: str = "", users: tuple[str, ...] = ()) -> str:
    """An MR-session bundle over DEMO (label and date columns), as pyxnat or grxnat build one."""
    allowed = "".join(
        f"<xdat:allowed_user><xdat:login>{u}</xdat:login></xdat:allowed_user>" for u in users
    )
    return (
        f'<xdat:bundle xmlns:xdat="http://nrg.wustl.edu/security" ID="{search_id}" {attrs}>'
        "<xdat:root_element_name>xnat:mrSessionData</xdat:root_element_name>"
        + "".join(
            f"<xdat:search_field><xdat:element_name>xnat:mrSessionData</xdat:element_name>"
            f"<xdat:field_ID>{f}</xdat:field_ID><xdat:sequence>{i}</xdat:sequence>"
            f"<xdat:type>string</xdat:type><xdat:header>{f}</xdat:header></xdat:search_field>"
            for i, f in enumerate(("LABEL", "DATE"))
        )
        + '<xdat:search_where method="AND"><xdat:criteria override_value_formatting="0">'
        "<xdat:schema_field>xnat:mrSessionData/PROJECT</xdat:schema_field>"
        "<xdat:comparison_type>=</xdat:comparison_type><xdat:value>DEMO</xdat:value>"
        f"</xdat:criteria>{criteria}</xdat:search_where>{allowed}</xdat:bundle>"
    )


def label_is(label: str) -> str:
    return (
        '<xdat:criteria override_value_formatting="0">'
        "<xdat:schema_field>xnat:mrSessionData/LABEL</xdat:schema_field>"
        f"<xdat:comparison_type>=</xdat:comparison_type><xdat:value>{label}</xdat:value>"
        "</xdat:criteria>"
    )


async def listed(session: aiohttp.ClientSession, **params: str) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in await rows(session, "/data/search/saved", **params)}


async def labels(session: aiohttp.ClientSession, search_id: str, **params: str) -> list[str]:
    found = await rows(session, f"/data/search/saved/{search_id}/results", **params)
    return sorted(r["label"] for r in found)


async def put(session: aiohttp.ClientSession, search_id: str, doc: str, **params: str) -> int:
    path = f"/data/search/saved/{search_id}"
    headers = {"Content-Type": "text/xml"}
    return (await call(session, "PUT", path, data=doc, params=params, headers=headers))[0]


@pytest.fixture
async def other(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(emu.url, headers=emu.auth("other")) as session:
        yield session


async def test_seeded_searches_listed_as_each_user_may_see_them(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession, other: aiohttp.ClientSession
) -> None:
    mine = await listed(admin)
    assert sorted(mine) == ["DEMO_MR"]  # DEMO_CT is secure, allowed only to `user`
    row = mine["DEMO_MR"]
    assert row["brief_description"] == "MR sessions of DEMO"
    assert (row["root_element_name"], row["secure"], row["users"]) == (
        "xnat:mrSessionData",
        "0",
        "{admin}",
    )
    assert sorted(await listed(user)) == ["DEMO_CT", "DEMO_MR"]
    assert sorted(await listed(other)) == ["DEMO_MR"]
    assert sorted(await listed(admin, all="true")) == ["DEMO_CT", "DEMO_MR"]
    assert sorted(await listed(admin, user="user")) == ["DEMO_CT", "DEMO_MR"]
    assert sorted(await listed(other, all="true")) == ["DEMO_MR"]  # admins only
    assert await listed(admin, includeTag="true") == {}
    status, body = await call(admin, "GET", "/data/search/saved", params={"includeTag": "NOPE"})
    assert status == 400
    assert "NOPE" in body


async def test_results_are_run_for_the_caller(
    user: aiohttp.ClientSession, other: aiohttp.ClientSession
) -> None:
    assert await labels(user, "DEMO_MR") == MR_LABELS
    assert await labels(user, "DEMO_CT") == ["DEMO03_CT1"]
    assert await labels(other, "DEMO_MR") == []  # DEMO is private to other
    result = await envelope(user, "/data/search/saved/DEMO_MR/results", sortBy="date")
    assert result["totalRecords"] == "3"
    assert [c["key"] for c in result["Columns"]] == [
        "label",
        "xnat_subjectdata_subject_label",
        "date",
        "project",
    ]
    assert [r["label"] for r in result["Result"]] == MR_LABELS
    path = "/data/search/saved/DEMO_MR/results"
    async with user.get(path, params={"format": "csv"}) as response:
        assert response.status == 200
        assert "results.csv" in response.headers["Content-Disposition"]
        table = list(csv.DictReader(io.StringIO(await response.text())))
    assert sorted(r["label"] for r in table) == MR_LABELS
    async with user.get(path, params={"format": "xml"}) as response:
        text = await response.text()
    assert response.status == 200
    assert all(label in text for label in MR_LABELS)
    assert (await call(user, "GET", "/data/search/saved/NOPE/results"))[0] == 404


async def test_the_document_and_generated_type_searches(admin: aiohttp.ClientSession) -> None:
    status, text = await call(admin, "GET", "/data/search/saved/DEMO_MR")
    assert status == 200
    root = ElementTree.fromstring(text)
    assert (root.tag, root.get("ID")) == (f"{XDAT}bundle", "DEMO_MR")
    assert root.findtext(f"{XDAT}root_element_name") == "xnat:mrSessionData"
    assert [n.text for n in root.iter(f"{XDAT}login")] == ["admin"]
    assert (await call(admin, "GET", "/data/search/saved/DEMO_MR", params={"format": "json"}))[
        0
    ] == 404
    assert (await call(admin, "GET", "/data/search/saved/NOPE"))[0] == 404
    assert (await call(admin, "GET", "/data/search/saved/@xnat:nopeData"))[0] == 404
    # TestTableNamingLimits: fetch the type's default search, cache it, read the cache
    status, default = await call(admin, "GET", "/data/search/saved/@xnat:mrSessionData")
    assert status == 200
    assert ElementTree.fromstring(default).get("ID") == "@xnat:mrSessionData"
    query = {"format": "json", "cache": "true", "refresh": "true"}
    async with admin.post("/data/search", params=query, data=default) as response:
        cache_id = (await response.json())["ResultSet"]["ID"]
    cached = await rows(admin, f"/data/search/{cache_id}")
    assert {"DEMO01_MR1", "PRIV01_MR1", "PUB01_MR1"} <= {r["label"] for r in cached}
    assert await labels(admin, "@xnat:ctSessionData") == ["DEMO03_CT1"]


async def test_put_list_replace_and_delete(
    user: aiohttp.ClientSession, other: aiohttp.ClientSession
) -> None:
    # pyxnat's shape: the bundle ID is "@{type}", the name is the path's ID
    assert (
        await put(
            user, "MINE", bundle("@xnat:mrSessionData", attrs='secure="false"'), inbody="true"
        )
        == 200
    )
    assert (await listed(other))["MINE"]["users"] == "{user}"
    assert await labels(user, "MINE") == MR_LABELS
    stored = (await call(user, "GET", "/data/search/saved/MINE"))[1]
    assert ElementTree.fromstring(stored).get("ID") == "MINE"
    narrowed = bundle("MINE", label_is("DEMO01_MR2"), users=("user",))
    assert await put(other, "MINE", narrowed) == 403  # not an allowed user of MINE
    assert await put(user, "MINE", narrowed) == 200
    assert await labels(user, "MINE") == ["DEMO01_MR2"]
    assert await put(other, "MINE", narrowed, saveAs="true") == 200
    copy = (await listed(other))["MINE_1"]
    assert copy["users"] == "{other}"
    assert await put(user, "BAD", "<xdat:nope xmlns:xdat='http://nrg.wustl.edu/security'/>") == 422
    assert await put(user, "BAD", "not xml") == 422
    assert (await call(other, "DELETE", "/data/search/saved/MINE"))[0] == 403
    assert (await call(user, "DELETE", "/data/search/saved/MINE"))[0] == 200
    assert (await call(user, "GET", "/data/search/saved/MINE"))[0] == 404
    assert (await call(user, "DELETE", "/data/search/saved/NEVER"))[0] == 200


async def test_shared_search_is_left_then_removed(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    doc = bundle("SHARED", attrs='secure="true"', users=("admin", "user"))
    assert await put(admin, "SHARED", doc) == 200
    assert "SHARED" in await listed(user)
    assert (await call(user, "DELETE", "/data/search/saved/SHARED"))[0] == 200
    assert "SHARED" not in await listed(user)  # user left; the search stays for admin
    assert (await listed(admin))["SHARED"]["users"] == "{admin}"
    assert (await call(admin, "DELETE", "/data/search/saved/SHARED"))[0] == 200
    assert "SHARED" not in await listed(admin, all="true")


async def test_stored_results_reuse_the_callers_cache_until_refreshed(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    """TestSearchPaginationAndCaching.testSearchEngineStoredSearchRefresh."""
    assert await put(admin, "REFRESH_ME", bundle("REFRESH_ME")) == 200
    narrowed = bundle("REFRESH_ME", label_is("DEMO01_MR1"))
    query = {"format": "json", "cache": "true", "refresh": "true"}
    async with admin.post("/data/search", params=query, data=narrowed) as response:
        assert response.status == 200
    assert await labels(admin, "REFRESH_ME") == ["DEMO01_MR1"]  # the cached (narrowed) table
    assert await labels(user, "REFRESH_ME") == MR_LABELS  # another user's cache is not used
    assert await labels(admin, "REFRESH_ME", refresh="true", cache="true") == MR_LABELS
    assert await labels(admin, "REFRESH_ME") == MR_LABELS  # the refresh dropped the table


async def test_stored_searches_persist_with_the_root(tmp_path: Path) -> None:
    config = EmulatorConfig(root=tmp_path, seed="demo")
    async with run_emulator(config) as emu, aiohttp.ClientSession(emu.url, headers=emu.auth()) as s:
        assert await put(s, "KEPT", bundle("KEPT", label_is("DEMO02_MR1"))) == 200
        assert (await call(s, "DELETE", "/data/search/saved/DEMO_MR"))[0] == 200
    async with run_emulator(config) as emu, aiohttp.ClientSession(emu.url, headers=emu.auth()) as s:
        assert await labels(s, "KEPT") == ["DEMO02_MR1"]
        assert "DEMO_MR" not in await listed(s, all="true")  # the seed does not bring it back
        assert "DEMO_CT" in await listed(s, all="true")


@pytest.mark.parametrize("prefix", ["/data", "/REST"])
async def test_search_routes_answer_as_the_spec_says(
    admin: aiohttp.ClientSession, prefix: str
) -> None:
    """§9: /search, /search/{cacheId}, /search/saved[/{id}[/results]], /search/elements[/{type}]."""
    doc = bundle("@xnat:mrSessionData")
    async with admin.post(
        f"{prefix}/search", params={"format": "json", "cache": "true"}, data=doc
    ) as response:
        assert response.status == 200
        cache_id = (await response.json())["ResultSet"]["ID"]
    json = {"format": "json"}
    expected = [
        ("GET", "/search", json, 405),
        ("GET", f"/search/{cache_id}", json, 200),
        ("GET", f"/search/{cache_id}/label", json, 200),
        ("GET", "/search/saved", json, 200),
        ("GET", "/search/saved/DEMO_MR", {}, 200),
        ("GET", "/search/saved/DEMO_MR/results", json, 200),
        ("GET", "/search/elements", json, 200),
        ("GET", "/search/elements/xnat:mrSessionData", json, 200),
        ("POST", "/search/saved", json, 405),
        ("GET", "/search/stored", json, 500),  # no such route: taken for a cache ID (§6.1)
        ("GET", "/search/saved/NOPE", {}, 404),
        ("GET", "/search/elements/xnat:nopeData", json, 404),
    ]
    for method, path, params, status in expected:
        got, body = await call(admin, method, prefix + path, params=params)
        assert got == status, (method, path, body[:200])
        if got == 404:
            assert "<h3>" in body  # an XNAT status page naming what is missing, not a bare 404
