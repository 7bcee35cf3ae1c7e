"""Reconstruction routes (`xnat:reconstructedImageData`, xnat-api §4.5, §9): list, get, PUT
create/update, DELETE under `/experiments/{E}/reconstructions` and
`/projects/{P}/subjects/{S}/experiments/{E}/reconstructions` — the only two session paths XNAT
routes them under (XNATApplication). Their OUT and IN resources and files are served by
`resources`, `files` and `upload` through `resources.OWNER_BASES`.

Answers (XNAT's ReconList / ReconResource; RT TestFileUpload.testReconUpload and
testReconstructionUpload): PUT → 200 with an empty body, whether it creates or updates (`type=`
and `baseScanType=` set fields; an XML path of another type is ignored); GET of the listing →
ResultSet with `xnat_reconstructedimagedata_id`, `ID`, `type`, `baseScanType`, `URI`
(`/data/experiments/{E}/reconstructions/{ID}`) and `totalRecords`; GET of one → its item (JSON
with `format=json`, else XML); an unknown reconstruction → 404 "Unable to find the specified
reconstruction."; DELETE → 200 and its resources go with it. IDs are unique within a session.
"""

from __future__ import annotations

from aiohttp import web

from xnatsync.emulator.common import add_data_route, plain, result_set, store_of
from xnatsync.emulator.hierarchy import fields_from, object_answer
from xnatsync.emulator.records import Experiment, Reconstruction, now_stamp
from xnatsync.emulator.render import RECON_XSI, recon_item, simple_xml
from xnatsync.emulator.resolve import resolve
from xnatsync.emulator.resources import RECONSTRUCTIONS
from xnatsync.emulator.store import Store

RECON_FIELDS = frozenset({"type", "baseScanType"})
_COLUMNS = ["xnat_reconstructedimagedata_id", "ID", "type", "baseScanType", "URI"]


def ensure_reconstruction(store: Store, session: Experiment, recon_id: str) -> Reconstruction:
    """The reconstruction `recon_id` of a session, created if missing."""
    found = session.reconstructions.get(recon_id)
    if found is None:
        found = Reconstruction(recon_id, session.id, insert_date=now_stamp())
        session.reconstructions[recon_id] = found
        store.dirty = True
    return found


def _session(request: web.Request, *, write: bool = False) -> Experiment:
    experiment = resolve(request, write=write, children=False).experiment
    assert experiment is not None  # every reconstruction route has {experiment}
    return experiment


def _row(recon: Reconstruction, index: int) -> dict[str, str]:
    values = [str(index), recon.id, recon.type, recon.base_scan_type]
    uri = f"/data/experiments/{recon.session}/reconstructions/{recon.id}"
    return dict(zip(_COLUMNS, [*values, uri], strict=True))


async def list_reconstructions(request: web.Request) -> web.Response:
    """GET …/experiments/{E}/reconstructions."""
    session = _session(request)
    rows = [_row(r, i) for i, r in enumerate(session.reconstructions.values(), 1)]
    return result_set(request, rows, default_columns=_COLUMNS)


async def get_reconstruction(request: web.Request) -> web.Response:
    """GET …/reconstructions/{R}: JSON items with format=json, XML otherwise."""
    recon = resolve(request).reconstruction
    assert recon is not None  # resolve answers 404 for an unknown one
    row = {"ID": recon.id, "type": recon.type, "baseScanType": recon.base_scan_type}
    return object_answer(request, recon_item(recon), simple_xml(RECON_XSI, row))


async def put_reconstruction(request: web.Request) -> web.Response:
    """PUT …/reconstructions/{R}[?type=&baseScanType=]: 200, create or update."""
    session = _session(request, write=True)
    recon = ensure_reconstruction(store_of(request), session, request.match_info["reconstruction"])
    fields = fields_from(request, RECON_FIELDS, RECON_XSI)
    recon.type = fields.get("type", recon.type)
    recon.base_scan_type = fields.get("baseScanType", recon.base_scan_type)
    store_of(request).dirty = True
    return plain("")


async def delete_reconstruction(request: web.Request) -> web.Response:
    """DELETE …/reconstructions/{R}: the reconstruction with its OUT and IN resources."""
    recon = resolve(request, write=True).reconstruction
    assert recon is not None
    store_of(request).delete_reconstruction(recon)
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register the reconstruction listing and single-reconstruction routes."""
    for path in RECONSTRUCTIONS:
        add_data_route(app, "GET", path.removesuffix("/{reconstruction}"), list_reconstructions)
        add_data_route(app, "GET", path, get_reconstruction)
        add_data_route(app, "PUT", path, put_reconstruction)
        add_data_route(app, "DELETE", path, delete_reconstruction)
