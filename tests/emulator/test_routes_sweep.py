"""A sweep of xnat-api §9's hierarchy, resource and file routes against the demo seed: every
route answers as the spec says — status and body shape — under `/data`, `/data/archive` and
`/REST`, and none falls through to a bare 404. Also the catalog refresh service, the user cache
(both `/data` and `/REST` only, as XNAT attaches them without the `/archive` alias) and the
`/xapi` routes of §9.

Not swept here (other modules, covered by their own tests): `/search…`, `/services/import`,
`/prearchive…`, `/services/archive`, `/services/validate-archive`, `/services/prearchive/…`,
`/status/{id}`, and the session/auth/token routes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows
from xnatsync.emulator.common import UNROUTED

PREFIXES = ("/data", "/data/archive", "/REST")
OCTET = {"Content-Type": "application/octet-stream"}
Check = Callable[[int, bytes, str], None]


def listing(status: int, body: bytes, ctype: str) -> None:
    """A ResultSet with string cells."""
    assert status == 200, body[:200]
    assert ctype == "application/json"
    result = json.loads(body)["ResultSet"]["Result"]
    assert isinstance(result, list)
    assert all(isinstance(v, str) for row in result for v in row.values())


def non_empty_listing(status: int, body: bytes, ctype: str) -> None:
    """A ResultSet with at least one row."""
    listing(status, body, ctype)
    assert json.loads(body)["ResultSet"]["Result"], body[:200]


def file_listing(status: int, body: bytes, ctype: str) -> None:
    """A file listing: `title` Files, `Columns`, no `totalRecords`, at least one row."""
    non_empty_listing(status, body, ctype)
    envelope = json.loads(body)["ResultSet"]
    assert envelope["title"] == "Files"
    assert envelope["Columns"] == [{"key": "URI", "serverRoot": ""}]
    assert "totalRecords" not in envelope


def item(status: int, body: bytes, ctype: str) -> None:
    """A single object as JSON items."""
    assert status == 200, body[:200]
    assert ctype == "application/json"
    assert json.loads(body)["items"][0]["data_fields"]


def catalog_xml(status: int, body: bytes, ctype: str) -> None:
    """A resource's catalog document."""
    assert status == 200, body[:200]
    assert ctype == "text/xml"
    assert b"<cat:Catalog" in body


def file_bytes(expected: bytes) -> Check:
    """One file's bytes, as an attachment."""

    def check(status: int, body: bytes, ctype: str) -> None:
        assert (status, body) == (200, expected)

    return check


def empty(status: int, body: bytes, ctype: str) -> None:
    """200 with an empty body (PUTs and DELETEs)."""
    assert (status, body) == (200, b"")


@dataclass(frozen=True, slots=True)
class Owner:
    """A path form of one resource owner and one of its files (in its first resource)."""

    path: str
    resource: str
    relpath: str
    data: bytes


@dataclass(slots=True)
class Seed:
    """The demo seed's identifiers plus what the sweep adds (subject resource, reconstruction)."""

    sid: str
    eid: str
    aid: str
    dicom: bytes
    notes: bytes
    protocol: bytes
    report: bytes


async def _bytes(admin: aiohttp.ClientSession, path: str) -> bytes:
    async with admin.get(path) as response:
        assert response.status == 200, path
        return await response.read()


@pytest.fixture
async def seed(admin: aiohttp.ClientSession) -> Seed:
    sid = (await rows(admin, "/data/projects/DEMO/subjects", label="DEMO01"))[0]["ID"]
    eid = (await rows(admin, "/data/projects/DEMO/experiments", label="DEMO01_MR1"))[0]["ID"]
    aid = (await rows(admin, f"/data/experiments/{eid}/assessors"))[0]["ID"]
    base = f"/data/experiments/{eid}"
    for path, body in (
        ("/data/projects/DEMO/subjects/DEMO01/resources/SUBJ/files/subject.txt", b"subject"),
        (f"{base}/reconstructions/R1/out/resources/OUT/files/out.txt", b"recon out"),
        (f"{base}/reconstructions/R1/in/resources/IN/files/in.txt", b"recon in"),
        (f"{base}/assessors/{aid}/in/resources/SRC/files/source.txt", b"assessor in"),
    ):
        if "reconstructions" in path:
            await call(admin, "PUT", f"{base}/reconstructions/R1?type=T1")
        assert (await call(admin, "PUT", path, data=body, headers=OCTET))[0] == 200
    return Seed(
        sid,
        eid,
        aid,
        await _bytes(admin, f"{base}/scans/1/resources/DICOM/files/1-0001.dcm"),
        await _bytes(admin, f"{base}/resources/NOTES/files/notes.txt"),
        await _bytes(admin, "/data/projects/DEMO/resources/PROTOCOLS/files/protocol.txt"),
        await _bytes(admin, f"{base}/assessors/{aid}/resources/QC/files/report.txt"),
    )


def _owners(s: Seed) -> list[Owner]:
    """Every owner path form of §9 (labels and IDs), each with a file of its first resource."""
    subj_label, subj_id = "/projects/DEMO/subjects/DEMO01", f"/projects/DEMO/subjects/{s.sid}"
    sessions = [
        f"{subj_label}/experiments/DEMO01_MR1",
        f"{subj_id}/experiments/{s.eid}",
        "/projects/DEMO/experiments/DEMO01_MR1",
        f"/projects/DEMO/experiments/{s.eid}",
        f"/experiments/{s.eid}",
    ]
    full, bare = sessions[0], sessions[4]  # the session paths scans and the rest hang from
    out = [Owner("/projects/DEMO", "PROTOCOLS", "protocol.txt", s.protocol)]
    out += [Owner(p, "SUBJ", "subject.txt", b"subject") for p in (subj_label, subj_id)]
    out += [Owner(f"/subjects/{s.sid}", "SUBJ", "subject.txt", b"subject")]
    out += [Owner(p, "NOTES", "notes.txt", s.notes) for p in sessions]
    for base in (full, f"{subj_id}/experiments/{s.eid}", bare):
        out.append(Owner(f"{base}/scans/1", "DICOM", "1-0001.dcm", s.dicom))
    for base in (full, bare):
        for assessor in (f"{base}/assessors/{s.aid}", f"{base}/assessors/DEMO01_MR1_QC"):
            for side in ("", "/out"):
                out.append(Owner(assessor + side, "QC", "report.txt", s.report))
            out.append(Owner(f"{assessor}/in", "SRC", "source.txt", b"assessor in"))
        for side in ("", "/out"):
            out.append(Owner(f"{base}/reconstructions/R1{side}", "OUT", "out.txt", b"recon out"))
        out.append(Owner(f"{base}/reconstructions/R1/in", "IN", "in.txt", b"recon in"))
    return out


def _hierarchy(s: Seed) -> list[tuple[str, Check]]:
    """The object and listing routes of §9 with the shape each must answer."""
    full = "/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
    bare = f"/experiments/{s.eid}"
    routes: list[tuple[str, Check]] = [
        ("/projects", non_empty_listing),
        ("/projects/DEMO", item),
        ("/projects/DEMO/subjects", non_empty_listing),
        ("/projects/DEMO/subjects/DEMO01", item),
        ("/projects/DEMO/experiments", non_empty_listing),
        ("/projects/DEMO/experiments/DEMO01_MR1", item),
        ("/projects/DEMO/subjects/DEMO01/experiments", non_empty_listing),
        ("/experiments", non_empty_listing),
        ("/subjects", non_empty_listing),
        (f"/subjects/{s.sid}", item),
    ]
    for base in (full, bare):
        routes += [
            (base, item),
            (f"{base}/scans", non_empty_listing),
            (f"{base}/scans/1", item),
            (f"{base}/assessors", non_empty_listing),
            (f"{base}/assessors/{s.aid}", item),
            (f"{base}/reconstructions", non_empty_listing),
            (f"{base}/reconstructions/R1", item),
        ]
    return routes


async def _answer(
    session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, bytes, str]:
    async with session.request(method, path, **kwargs) as response:
        return response.status, await response.read(), response.content_type


async def _sweep(
    session: aiohttp.ClientSession, routes: list[tuple[str, Check]], **params: str
) -> None:
    for prefix in PREFIXES:
        for path, check in routes:
            status, body, ctype = await _answer(session, "GET", prefix + path, params=params)
            try:
                check(status, body, ctype)
            except AssertionError as exc:
                raise AssertionError(f"GET {prefix}{path}: {exc}") from exc


async def test_hierarchy_routes(admin: aiohttp.ClientSession, seed: Seed) -> None:
    await _sweep(admin, _hierarchy(seed), format="json")


async def test_resource_and_file_routes_at_every_owner(
    admin: aiohttp.ClientSession, seed: Seed
) -> None:
    routes: list[tuple[str, Check]] = []
    for o in _owners(seed):
        routes += [
            (f"{o.path}/resources", non_empty_listing),
            (f"{o.path}/resources/{o.resource}/files", file_listing),
            (f"{o.path}/resources/{o.resource}/files/{o.relpath}", file_bytes(o.data)),
            (f"{o.path}/files", file_listing),
            (f"{o.path}/files/{o.relpath}", file_bytes(o.data)),
        ]
    await _sweep(admin, routes)
    await _sweep(admin, [(f"{o.path}/resources/{o.resource}", catalog_xml) for o in _owners(seed)])


async def test_writes_route_at_every_owner(admin: aiohttp.ClientSession, seed: Seed) -> None:
    """PUT a resource and a file, read it back, DELETE both — through every owner path form."""
    for n, o in enumerate(_owners(seed)):
        prefix = PREFIXES[n % len(PREFIXES)]
        label = f"SWEEP{n}"
        base = f"{prefix}{o.path}/resources/{label}"
        empty(*await _answer(admin, "PUT", base))
        empty(*await _answer(admin, "PUT", f"{base}/files/s.txt", data=b"swept", headers=OCTET))
        file_bytes(b"swept")(*await _answer(admin, "GET", f"{base}/files/s.txt"))
        empty(*await _answer(admin, "DELETE", f"{base}/files/s.txt"))
        empty(*await _answer(admin, "DELETE", base))
        status, _, _ = await _answer(admin, "GET", f"{base}/files/s.txt")
        assert status == 404, base


async def test_services_and_user_cache(admin: aiohttp.ClientSession, seed: Seed) -> None:
    for prefix in PREFIXES:
        archived = prefix == "/data/archive"
        refresh = f"{prefix}/services/refresh/catalog"
        status, body, _ = await _answer(
            admin, "POST", refresh, params={"resource": f"/archive/experiments/{seed.eid}"}
        )
        assert status == (404 if archived else 200), refresh  # XNAT: attachURI, no /archive
        assert archived or body == b""
        cache = f"{prefix}/user/cache/resources"
        status, _, _ = await _answer(
            admin, "PUT", f"{cache}/SW/files/c.txt?inbody=true", data=b"cached"
        )
        assert status == (404 if archived else 200), cache
        if archived:
            continue
        file_bytes(b"cached")(*await _answer(admin, "GET", f"{cache}/SW/files/c.txt"))
        non_empty_listing(*await _answer(admin, "GET", f"{cache}/SW/files"))
        non_empty_listing(*await _answer(admin, "GET", cache))
        empty(*await _answer(admin, "DELETE", f"{cache}/SW"))


async def test_xapi_routes(admin: aiohttp.ClientSession, seed: Seed) -> None:
    status, body, ctype = await _answer(admin, "GET", "/xapi/siteConfig/buildInfo")
    assert (status, ctype) == (200, "application/json")
    assert "version" in json.loads(body)
    assert await _answer(admin, "GET", "/xapi/users/username") == (200, b"admin", "text/plain")
    status, body, _ = await _answer(admin, "GET", "/xapi/users/profile")
    assert (status, json.loads(body)["username"]) == (200, "admin")
    selection = {"sessions": [f"DEMO:{seed.sid}:DEMO01_MR1:{seed.eid}"], "resources": ["NOTES"]}
    headers = {"Content-Type": "application/json"}
    status, catalog, _ = await _answer(
        admin, "POST", "/xapi/archive/download", data=json.dumps(selection), headers=headers
    )
    assert status == 200
    status, body, ctype = await _answer(
        admin, "GET", f"/xapi/archive/download/{catalog.decode()}/zip"
    )
    assert (status, ctype) == (200, "application/zip")
    assert (
        "DEMO01_MR1/resources/NOTES/files/notes.txt" in zipfile.ZipFile(io.BytesIO(body)).namelist()
    )
    paths = json.dumps([f"/archive/experiments/{seed.eid}"])
    status, _, _ = await _answer(
        admin, "PUT", "/xapi/archive/catalogs/refresh", data=paths, headers=headers
    )
    assert status == 200


async def test_an_unrouted_path_gets_restlets_status_page(admin: aiohttp.ClientSession) -> None:
    """XNAT answers a /data path no route matches with Restlet's 404 page (an HTML status
    page, as every other error), and a known path with another method with 405."""
    for path in ("/data/nothing/here", "/REST/projects/DEMO/experiments/DEMO01_MR1/scans"):
        status, text = await call(admin, "GET", path)
        assert (status, f"<h3>{UNROUTED}</h3>" in text) == (404, True)
    status, text = await call(admin, "PATCH", "/data/projects")
    assert (status, "<h3>Method Not Allowed</h3>" in text) == (405, True)
    async with admin.get("/xapi/nothing") as response:  # not Restlet's: left to aiohttp
        assert response.status == 404
