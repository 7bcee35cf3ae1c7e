"""The emulator's XSD schemas and search catalogue, as xnatpy and pyxnat consume them."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_exceptions import NotAppKeyWarning
from xnat.convert_xsd import SchemaParser

from xnatsync.emulator import common, schema
from xnatsync.emulator.settings import User
from xnatsync.emulator.store import Store

Client = TestClient[web.Request, web.Application]


@web.middleware
async def _stub_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotAppKeyWarning)
        request[common.USER_KEY] = User("admin", "admin", admin=True)
    return await handler(request)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    store = Store(tmp_path)
    store.create_project("P1")
    store.ensure_experiment("P1", "S1", "E1", date="2024-01-02")
    app = web.Application(middlewares=[_stub_auth])
    app[common.STORE_KEY] = store
    schema.add_routes(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_schema_list_and_documents(client: Client) -> None:
    names = await (await client.get("/xapi/schemas")).json()
    assert names == ["xnat"]
    for url in ("/xapi/schemas/xnat", "/xapi/schemas/xnat/xnat", "/schemas/xnat/xnat.xsd"):
        resp = await client.get(url)
        assert resp.status == 200
        assert (await resp.text()).lstrip().startswith("<?xml")
    assert (await client.get("/xapi/schemas/nope")).status == 404


def _class_lookup(xsd: str) -> dict[str, type]:
    """Build xnatpy's object model from `xsd` the way `xnat.connect` does (no server)."""
    import importlib.util

    from xnat import StringLoader

    logger = logging.getLogger("xsd-test")
    logger.verbose = logger.debug  # type: ignore[attr-defined]  # xnatpy adds this level at connect
    parser = SchemaParser(logger=logger)
    assert parser.parse_schema_xmlstring(xsd, "/xapi/schemas/xnat")
    out = io.StringIO()
    parser.write(out)
    loader = StringLoader(out.getvalue())
    spec = importlib.util.spec_from_loader("xsd_test_model", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    lookup: dict[str, type] = module.XNAT_CLASS_LOOKUP
    for cls in parser.class_list.values():
        if cls.name is not None and not (cls.base_class or "").startswith("xs:"):
            getattr(module, cls.writer.python_name).__register__(lookup)
    return lookup


async def test_xnatpy_builds_the_model_and_every_catalogued_type_exists(client: Client) -> None:
    lookup = _class_lookup(await (await client.get("/xapi/schemas/xnat")).text())
    session = lookup["xnat:mrSessionData"]
    assert {"scans", "resources", "label", "subject_id", "date", "project"} <= set(dir(session))
    assert {"experiments", "resources", "label"} <= set(dir(lookup["xnat:subjectData"]))
    assert {"type", "series_description", "quality", "resources"} <= set(
        dir(lookup["xnat:mrScanData"])
    )
    assert issubclass(lookup["xnat:resourceCatalog"], lookup["xnat:abstractResource"])
    elements = await (await client.get("/data/search/elements?format=json")).json()
    names = [row["ELEMENT_NAME"] for row in elements["ResultSet"]["Result"]]
    assert "xnat:mrSessionData" in names
    assert all(name in lookup for name in names)
    mr = [r for r in elements["ResultSet"]["Result"] if r["ELEMENT_NAME"] == "xnat:mrSessionData"]
    assert mr[0]["COUNT"] == "1"


async def test_element_fields(client: Client) -> None:
    fields = await (await client.get("/data/search/elements/xnat:mrSessionData?format=json")).json()
    ids = {row["FIELD_ID"] for row in fields["ResultSet"]["Result"]}
    assert {"LABEL", "PROJECT", "DATE", "SUBJECT_LABEL", "SESSION_ID"} <= ids
    assert (await client.get("/data/search/elements/xnat:nope")).status == 404
