"""Filter semantics of `/data/experiments` and friends (xnat-api §3.3), as pure functions.

A query parameter filters rows when its name is a field shortcut or contains `/` (an XML path,
matched on its last segment). Values: comma = OR; `*` or `%` = wildcard; date fields take
`a-b` ranges with `yyyyMMdd`, `MM/dd/yyyy` or `MM.dd.yyyy` endpoints. `xsiType` is handled by the
caller (a single type filters, a comma list does not).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping

SHORTCUTS = frozenset(
    [
        "ID",
        "visit_id",
        "visit",
        "protocol",
        "date",
        "time",
        "note",
        "pi_firstname",
        "pi_lastname",
        "project",
        "label",
        "scanner",
        "operator",
        "dcmAccessionNumber",
        "dcmPatientId",
        "dcmPatientName",
        "session_type",
        "modality",
        "UID",
        "studyInstanceUID",
        "coil",
        "fieldStrength",
        "marker",
        "stabilization",
        "subject_ID",
        "subject_label",
        "subject_project",
        "session_ID",
        "session_label",
        "session_project",
        "insert_date",
        "insert_user",
        "last_modified",
    ]
)
DATE_FIELDS = frozenset({"date", "insert_date", "last_modified"})
_DATE_FORMATS = ("%Y%m%d", "%m/%d/%Y", "%m.%d.%Y", "%Y-%m-%d")


def parse_date(text: str) -> dt.date | None:
    """A date in one of XNAT's accepted query formats, or None."""
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def _row_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _date_matches(value: str, wanted: str) -> bool:
    actual = _row_date(value)
    if actual is None:
        return False
    low_text, sep, high_text = wanted.partition("-")
    low = parse_date(low_text)
    if not sep:
        return low == actual
    high = parse_date(high_text)
    return (low is None or low <= actual) and (high is None or actual <= high)


def _text_matches(value: str, wanted: str) -> bool:
    if "*" in wanted or "%" in wanted:
        pattern = wanted.replace("%", "*")
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return value == wanted


def _column(row: Mapping[str, str], name: str) -> str | None:
    if name in row:
        return name
    last = name.rsplit("/", 1)[-1].lower()
    for key in row:
        if key.lower() == last or key.lower() == name.lower():
            return key
    return None


def criteria(params: Mapping[str, str]) -> dict[str, str]:
    """The query parameters that act as filters."""
    return {k: v for k, v in params.items() if k in SHORTCUTS or "/" in k}


def matches(row: Mapping[str, str], crit: Mapping[str, str]) -> bool:
    """Whether a row satisfies every criterion (unknown columns never match)."""
    for name, wanted in crit.items():
        key = _column(row, name)
        if key is None:
            return False
        field = key.rsplit("/", 1)[-1]
        test = _date_matches if field in DATE_FIELDS else _text_matches
        if not any(test(row[key], alt) for alt in wanted.split(",")):
            return False
    return True


def xsi_filter(xsi_type: str | None) -> str | None:
    """The single root type a `xsiType=` parameter filters on (a comma list filters nothing)."""
    if not xsi_type or "," in xsi_type:
        return None
    return xsi_type.lower()


_EVERY_EXPERIMENT = frozenset({"xnat:experimentdata", "xnat:subjectassessordata"})


def is_a(xsi_type: str, root: str) -> bool:
    """Whether an experiment of `xsi_type` is listed under the root type `root` (lower-case):
    the type itself or, for XNAT's abstract types, any of its subtypes (§3.3). Every
    experiment here is a subject assessor; image sessions are the `*SessionData` types."""
    actual = xsi_type.lower()
    if root in _EVERY_EXPERIMENT:
        return True
    if root == "xnat:imagesessiondata":
        return actual.endswith("sessiondata")
    return actual == root
