"""The emulator's `POST /data/search`: parse an `xdat:bundle`, filter records, shape rows (§6.1).

Pure: records come in as flat dicts of canonical lower-case keys (`id`, `label`, `project`,
`date`, `subject_id`, `subject_label`, `xsi_type`, …) built by `schema.py` from the store.

Supported: a root element (types match their subtypes: `xnat:imageSessionData` finds every
session), search fields named by display-field ID (`LABEL`, `SESSION_ID`, `SUBJECT_LABEL`, …) or
by XML path (`xnat:mrSessionData/subject_ID`, as xnatpy sends), and criteria `=`, `!=`, `<`,
`<=`, `>`, `>=`, `LIKE`, `NOT LIKE`, `BETWEEN a AND b`, `IN`, `IS NULL`, `IS NOT NULL`, nested
in AND/OR `child_set`s. Row keys are the lower-cased field ID for root-element fields and
`{element sql name}_{field id}` for joined elements (`xnat_subjectdata_subject_label`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree

XDAT = "{http://nrg.wustl.edu/security}"
PARENTS = {
    "xnat:subjectAssessorData": "xnat:experimentData",
    "xnat:imageSessionData": "xnat:subjectAssessorData",
    "xnat:derivedData": "xnat:experimentData",
    "xnat:imageAssessorData": "xnat:derivedData",
    "xnat:qcAssessmentData": "xnat:imageAssessorData",
    **{
        f"xnat:{m}SessionData": "xnat:imageSessionData"
        for m in ("mr", "ct", "pet", "cr", "us", "otherDicom", "dx", "mg", "xa", "nm", "sr")
    },
    **{
        f"xnat:{m}ScanData": "xnat:imageScanData"
        for m in ("mr", "ct", "pet", "cr", "us", "sc", "otherDicom", "dx", "mg", "xa", "nm", "sr")
    },
}
_ALIASES = {
    "session_id": "id",
    "expt_id": "id",
    "projects": "project",
    "subjectid": "subject_id",
    "xsitype": "xsi_type",
    "element_name": "xsi_type",
    "series_desc": "series_description",
    "imagesession_id": "image_session_id",
}
_DATE_PATTERNS = (
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})"), (3, 1, 2)),
    (re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})"), (3, 1, 2)),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), (1, 2, 3)),
)
DATE_KEYS = frozenset({"date", "insert_date", "last_modified"})


class BadSearch(ValueError):
    """The body is not a search document this emulator understands (→ 422)."""


@dataclass(frozen=True, slots=True)
class Field:
    element: str
    field_id: str
    header: str
    type: str


@dataclass(frozen=True, slots=True)
class Criterion:
    field: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class Where:
    method: str
    items: tuple[Criterion | Where, ...]


@dataclass(frozen=True, slots=True)
class Bundle:
    root: str
    fields: tuple[Field, ...]
    where: Where
    id: str = ""  # the bundle's `ID` attribute: a stored search's ID, `@{type}`, or none


def is_a(xsi_type: str, root: str) -> bool:
    """Whether `xsi_type` is `root` or one of its subtypes (case-insensitive)."""
    current: str | None = xsi_type
    while current is not None:
        if current.lower() == root.lower():
            return True
        current = PARENTS.get(current)
    return False


def _text(node: ElementTree.Element, tag: str) -> str:
    found = node.find(XDAT + tag)
    return (found.text or "").strip() if found is not None else ""


def _where(node: ElementTree.Element) -> Where:
    items: list[Criterion | Where] = []
    for child in node:
        if child.tag == XDAT + "criteria":
            field = _text(child, "schema_field")
            op = " ".join(_text(child, "comparison_type").upper().split())
            items.append(Criterion(field, op, _text(child, "value")))
        elif child.tag == XDAT + "child_set":
            items.append(_where(child))
    return Where(node.get("method", "AND").upper(), tuple(items))


def parse_bundle(document: bytes) -> Bundle:
    """Read an `xdat:bundle`; BadSearch if it is not one."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        raise BadSearch(f"Unable to parse search document: {exc}") from exc
    if root.tag != XDAT + "bundle":
        raise BadSearch("Expected an xdat:bundle search document")
    root_name = _text(root, "root_element_name")
    if not root_name:
        raise BadSearch("Missing root_element_name")
    fields = tuple(
        Field(
            _text(n, "element_name") or root_name,
            _text(n, "field_ID"),
            _text(n, "header"),
            _text(n, "type") or "string",
        )
        for n in root.findall(XDAT + "search_field")
    )
    where_node = root.find(XDAT + "search_where")
    where = _where(where_node) if where_node is not None else Where("AND", ())
    return Bundle(root_name, fields, where, root.get("ID", ""))


def canonical(root: str, path: str) -> str:
    """The record key a field or criterion path names (`xnat:subjectData/LABEL` → subject_label)."""
    parts = re.split(r"[/.]", path, maxsplit=1)
    element, tail = (parts[0], parts[1]) if len(parts) == 2 else (root, path)
    tail = tail.rsplit("/", 1)[-1].lower()
    tail = _ALIASES.get(tail, tail)
    if element.lower() == "xnat:subjectdata" and not is_a("xnat:subjectData", root):
        return {"label": "subject_label", "id": "subject_id"}.get(tail, tail)
    if element.lower() == "xnat:projectdata" and not is_a("xnat:projectData", root):
        return {"id": "project", "name": "project_name"}.get(tail, tail)
    return tail


def column_key(root: str, field: Field) -> str:
    """The result-row key of a search field (§6.1)."""
    tail = field.field_id.rsplit("/", 1)[-1].lower()
    if field.element.lower() == root.lower() or not field.element:
        return tail
    return f"{field.element.replace(':', '_').lower()}_{tail}"


def _iso(value: str) -> str:
    for pattern, order in _DATE_PATTERNS:
        match = pattern.match(value.strip())
        if match:
            year, month, day = (match.group(i) for i in order)
            return f"{year}-{int(month):02d}-{int(day):02d}"
    return value.strip()


def _like(pattern: str, value: str) -> bool:
    regex = "".join(
        ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern.strip()
    )
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def _compare(op: str, actual: str, wanted: str, is_date: bool) -> bool:
    norm = _iso if is_date else str.strip
    if op in ("IS NULL", "IS NOT NULL"):
        return (actual == "") == (op == "IS NULL")
    if op in ("LIKE", "NOT LIKE"):
        return _like(wanted, actual) == (op == "LIKE")
    if op == "BETWEEN":
        bounds = re.split(r"\s+AND\s+", wanted, maxsplit=1, flags=re.IGNORECASE)
        return len(bounds) == 2 and norm(bounds[0]) <= actual <= norm(bounds[1])
    if op == "IN":
        return actual in {norm(v) for v in wanted.strip("()").split(",")}
    value = norm(wanted)
    if is_date and op in ("<=", ">") and len(value) == 10:
        actual = actual[:10]
    checks = {
        "=": actual == value,
        "!=": actual != value,
        "<>": actual != value,
        "<": actual < value,
        "<=": actual <= value,
        ">": actual > value,
        ">=": actual >= value,
    }
    if op not in checks:
        raise BadSearch(f"Unsupported comparison type: {op}")
    return checks[op]


def matches(root: str, where: Where, record: Mapping[str, str]) -> bool:
    """Evaluate a criteria set against one record."""
    results = []
    for item in where.items:
        if isinstance(item, Where):
            results.append(matches(root, item, record))
            continue
        key = canonical(root, item.field)
        results.append(_compare(item.op, record.get(key, ""), item.value, key in DATE_KEYS))
    if not results:
        return True
    return any(results) if where.method == "OR" else all(results)


def key_columns(root: str) -> tuple[str, ...]:
    """Columns always in a row, so clients can address the object (xnatpy's FROM_SEARCH_URI)."""
    if is_a(root, "xnat:experimentData"):
        return ("session_id", "subject_id", "project", "label")
    if is_a(root, "xnat:subjectData"):
        return ("subjectid", "project", "label")
    if is_a(root, "xnat:imageScanData"):
        return ("id", "image_session_id", "project")
    return ("id",)


def run(
    bundle: Bundle, records: Sequence[Mapping[str, str]]
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(Columns metadata, result rows) of a search over `records`."""
    columns = [
        {
            "key": column_key(bundle.root, f),
            "element_name": f.element,
            "id": f.field_id,
            "xPATH": f"{f.element}.{f.field_id}",
            "header": f.header,
            "type": f.type,
        }
        for f in bundle.fields
    ]
    keys = [
        (c["key"], canonical(bundle.root, f"{f.element}/{f.field_id}"))
        for c, f in zip(columns, bundle.fields, strict=True)
    ]
    keys += [(k, _ALIASES.get(k, k)) for k in key_columns(bundle.root) if k not in dict(keys)]
    rows = [
        {key: record.get(source, "") for key, source in keys}
        for record in records
        if is_a(record.get("xsi_type", ""), bundle.root)
        and matches(bundle.root, bundle.where, record)
    ]
    return columns, rows
