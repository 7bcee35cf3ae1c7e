"""XML-path parameters of the archive service (§5.3; TestArchive.testBasicArchiveFromPrearcWParams).

`POST /data/services/archive?src=…` may set fields of the session being archived by their XML
path under the session's data type, e.g.::

    xnat:mrSessionData/project=P  xnat:mrSessionData/subject_id=S  xnat:mrSessionData/label=E
    xnat:mrSessionData/scans/scan[0][@xsi:type=xnat:mrScanData]/type=ARC_TEST

Rules:
* A path is used when its root is the session's own type or a generic parent
  (`xnat:imageSessionData`, `xnat:subjectAssessorData`, `xnat:experimentData`), compared without
  case; paths rooted at another type are ignored, as XNAT ignores paths not usable for the element.
* `project`, `subject_id` (a label or accession ID; the subject is created if missing) and `label`
  choose where the session is archived; `date`, `time`, `visit_id`, `note`, `acquisition_site`
  set session fields.
* `scans/scan[N]…/FIELD` (N from 0, in scan order) sets `type`, `quality`, `note` or
  `series_description` of the N-th scan.
* Any other field under a usable root is refused: ValueError naming the parameter (→ 400).

Pure: no aiohttp, no store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_GENERIC_ROOTS = {"xnat:imagesessiondata", "xnat:subjectassessordata", "xnat:experimentdata"}
_TARGET_PATHS = {"project": "project", "subject_id": "subject", "label": "label"}
_SESSION_FIELDS = {"date", "time", "visit_id", "note", "acquisition_site"}
_SCAN_FIELDS = {"type", "quality", "note", "series_description"}
_SCAN_PATH = re.compile(r"scans/scan\[(\d+)\](?:\[@xsi:type=[^\]]*\])?/(\w+)")


@dataclass(slots=True)
class ArchiveOverrides:
    """What the XML-path parameters ask for (None/empty = not given)."""

    project: str | None = None
    subject: str | None = None
    label: str | None = None
    session_fields: dict[str, str] = field(default_factory=dict)
    scan_fields: dict[int, dict[str, str]] = field(default_factory=dict)  # by scan position

    def by_scan_id(self, scan_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Scan overrides keyed by scan ID (positions past the last scan are dropped)."""
        return {scan_ids[i]: f for i, f in self.scan_fields.items() if i < len(scan_ids)}


def _usable_path(key: str, session_type: str) -> str | None:
    root, sep, path = key.partition("/")
    if not sep or ":" not in root:
        return None
    usable = root.lower() == session_type.lower() or root.lower() in _GENERIC_ROOTS
    return path if usable else None


def xml_path_overrides(params: Iterable[tuple[str, str]], session_type: str) -> ArchiveOverrides:
    """Collect the XML-path parameters usable for a session of `session_type`."""
    found = ArchiveOverrides()
    for key, value in params:
        path = _usable_path(key, session_type)
        if path is None:
            continue
        if path in _TARGET_PATHS:
            setattr(found, _TARGET_PATHS[path], value.strip() or None)
        elif path in _SESSION_FIELDS:
            found.session_fields[path] = value
        elif (scan := _SCAN_PATH.fullmatch(path)) and scan.group(2) in _SCAN_FIELDS:
            found.scan_fields.setdefault(int(scan.group(1)), {})[scan.group(2)] = value
        else:
            raise ValueError(f"unable to map parameters to valid xml path: {key}")
    return found


def scan_order(scan_ids: Iterable[str]) -> list[str]:
    """Scan IDs in the order the session document lists them (numeric IDs numerically)."""
    return sorted(scan_ids, key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))
