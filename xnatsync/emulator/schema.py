"""XSD schemas at `/xapi/schemas…`, the search-field catalogue and the records searches read.

xnatpy builds its object model at connect time from `GET /xapi/schemas` (a JSON list of names)
and `GET /xapi/schemas/{name}` (XSD text), then reads `/data/search/elements[/{type}]` to add
display fields; pyxnat uses the same catalogue and posts `xdat:bundle` searches (served by
`search_routes` and `saved_search`, which read `records()` and `FIELDS` from here). The schema
files are the emulator's own (`schemas/*.xsd`), describing exactly the types it serves.

Invariants: every type in the search catalogue is defined in a served schema (xnatpy warns
otherwise); search rows only contain objects of projects the user can read.
"""

from __future__ import annotations

import functools
import importlib.resources

from aiohttp import web

from xnatsync.emulator import common
from xnatsync.emulator.store import Store

SCHEMAS = ("xnat",)
_SESSION_TYPES = tuple(
    f"xnat:{m}SessionData" for m in ("mr", "ct", "pet", "cr", "us", "otherDicom")
)
_SCAN_TYPES = tuple(
    f"xnat:{m}ScanData" for m in ("mr", "ct", "pet", "cr", "us", "sc", "otherDicom")
)
_EXPERIMENT_FIELDS = (
    ("SESSION_ID", "ID", "string"),
    ("EXPT_ID", "ID", "string"),
    ("LABEL", "Label", "string"),
    ("PROJECT", "Project", "string"),
    ("DATE", "Date", "date"),
    ("SUBJECT_ID", "Subject", "string"),
    ("SUBJECT_LABEL", "Subject", "string"),
    ("INSERT_DATE", "Inserted", "date"),
    ("LAST_MODIFIED", "Last Modified", "date"),
    ("UID", "UID", "string"),
    ("MODALITY", "Modality", "string"),
    ("DCMPATIENTID", "Patient ID", "string"),
    ("DCMPATIENTNAME", "Patient Name", "string"),
)
FIELDS = {
    "xnat:projectData": (
        ("ID", "ID", "string"),
        ("NAME", "Title", "string"),
        ("SECONDARY_ID", "Running Title", "string"),
        ("DESCRIPTION", "Description", "string"),
        ("PI", "PI", "string"),
        ("INSERT_DATE", "Inserted", "date"),
    ),
    "xnat:subjectData": (
        ("SUBJECT_ID", "ID", "string"),
        ("SUBJECT_LABEL", "Subject", "string"),
        ("LABEL", "Label", "string"),
        ("PROJECT", "Project", "string"),
        ("INSERT_DATE", "Inserted", "date"),
        ("INSERT_USER", "Creator", "string"),
        ("LAST_MODIFIED", "Last Modified", "date"),
    ),
    "xnat:qcAssessmentData": _EXPERIMENT_FIELDS[:9],
    **dict.fromkeys(_SESSION_TYPES, _EXPERIMENT_FIELDS),
    **dict.fromkeys(
        _SCAN_TYPES,
        (
            ("ID", "Scan", "string"),
            ("TYPE", "Type", "string"),
            ("SERIES_DESCRIPTION", "Series Description", "string"),
            ("QUALITY", "Quality", "string"),
            ("IMAGE_SESSION_ID", "Session", "string"),
            ("PROJECT", "Project", "string"),
            ("NOTE", "Note", "string"),
        ),
    ),
}


@functools.cache
def schema_text(name: str) -> str:
    """The XSD text of a served schema (read once from the package)."""
    return (importlib.resources.files("xnatsync.emulator") / "schemas" / f"{name}.xsd").read_text(
        "utf-8"
    )


async def list_schemas(request: web.Request) -> web.Response:
    """GET /xapi/schemas → JSON list of schema names."""
    return web.json_response(list(SCHEMAS))


async def get_schema(request: web.Request) -> web.Response:
    """GET /xapi/schemas/{name} (or {namespace}/{name}, or 1.6's /schemas/{ns}/{name}.xsd)."""
    name = request.match_info["name"].removesuffix(".xsd")
    namespace = request.match_info.get("namespace", name)
    if name not in SCHEMAS or namespace != name:
        return web.Response(status=404, text=f"No schema {namespace}/{name}")
    return web.Response(text=schema_text(name), content_type="text/xml")


def _element_name(xsi_type: str) -> tuple[str, str]:
    base = xsi_type.split(":", 1)[1].removesuffix("Data")
    singular = base[:1].upper() + base[1:]
    return singular, singular + "s"


async def search_elements(request: web.Request) -> web.Response:
    """GET /data/search/elements → one row per searchable data type."""
    found = records(common.store_of(request), request)
    rows = []
    for xsi_type in FIELDS:
        singular, plural = _element_name(xsi_type)
        count = sum(1 for r in found if r["xsi_type"] == xsi_type)
        rows.append(
            {
                "ELEMENT_NAME": xsi_type,
                "SINGULAR": singular,
                "PLURAL": plural,
                "CATEGORY": "",
                "SECURED": "true",
                "BROWSEABLE": "true",
                "COUNT": str(count),
            }
        )
    return common.result_set(request, rows)


def searchable(xsi_type: str) -> str | None:
    """The catalogue's spelling of a searchable type (case-insensitive), or None."""
    return next((k for k in FIELDS if k.lower() == xsi_type.lower()), None)


async def search_element_fields(request: web.Request) -> web.Response:
    """GET /data/search/elements/{type} → the display fields of one type."""
    found = searchable(request.match_info["type"])
    if found is None:
        common.fail(404, f"Unknown data type: {request.match_info['type']}")
    xsi_type, fields = found, FIELDS[found]
    rows = [
        {
            "FIELD_ID": field_id,
            "HEADER": header,
            "SUMMARY": header,
            "TYPE": kind,
            "REQUIRES_VALUE": "false",
            "DESC": header,
            "ELEMENT_NAME": xsi_type,
            "SRC": "0",
        }
        for field_id, header, kind in fields
    ]
    return common.result_set(request, rows)


def records(store: Store, request: web.Request) -> list[dict[str, str]]:
    """Flat records (canonical keys, see `search`) of everything the user may read."""
    user = common.user_of(request)
    readable = {p.id: p for p in store.projects.values() if common.can_read(user, p)}
    out: list[dict[str, str]] = []
    for project in readable.values():
        pi = f"{project.pi_lastname}, {project.pi_firstname}".strip(", ")
        out.append(
            {
                "xsi_type": "xnat:projectData",
                "id": project.id,
                "name": project.name,
                "secondary_id": project.secondary_id,
                "description": project.description,
                "pi": pi,
                "insert_date": project.insert_date,
            }
        )
    for subject in store.subjects.values():
        if subject.project in readable:
            out.append(
                {
                    "xsi_type": "xnat:subjectData",
                    "id": subject.id,
                    "subject_id": subject.id,
                    "label": subject.label,
                    "subject_label": subject.label,
                    "project": subject.project,
                    "insert_date": subject.insert_date,
                    "insert_user": subject.insert_user,
                    "last_modified": subject.last_modified,
                }
            )
    for experiment in store.experiments.values():
        if experiment.project not in readable:
            continue
        subject_record = store.subjects.get(experiment.subject)
        fields = {k.lower(): v for k, v in experiment.fields.items()}
        out.append(
            {
                **fields,
                "xsi_type": experiment.xsi_type,
                "id": experiment.id,
                "label": experiment.label,
                "project": experiment.project,
                "date": experiment.date,
                "subject_id": experiment.subject,
                "subject_label": subject_record.label if subject_record else "",
                "insert_date": experiment.insert_date,
                "last_modified": experiment.last_modified,
            }
        )
        for scan in experiment.scans.values():
            out.append(
                {
                    "xsi_type": scan.xsi_type,
                    "id": scan.id,
                    "type": scan.type,
                    "series_description": scan.series_description,
                    "quality": scan.quality,
                    "note": scan.note,
                    "image_session_id": experiment.id,
                    "project": experiment.project,
                }
            )
    return out


def add_routes(app: web.Application) -> None:
    """Register /xapi/schemas… and /data/search/elements…."""
    app.router.add_get("/xapi/schemas", list_schemas)
    app.router.add_get("/xapi/schemas/{name}", get_schema)
    app.router.add_get("/xapi/schemas/{namespace}/{name}", get_schema)
    app.router.add_get("/schemas/{namespace}/{name}", get_schema)
    common.add_data_route(app, "GET", "/search/elements", search_elements)
    common.add_data_route(app, "GET", "/search/elements/{type}", search_element_fields)
