"""XNAT responses → values, and HTTP statuses → typed errors (no I/O).

``raise_for_status`` is the one place a status becomes an error: the status decides, the body
only decorates the message (never sniffed for ``<html>``), and every message is redacted.

Listing decisions (documented because they decide what "the same file" means):

* ``ResultSet.Result`` rows become ``dict[str, str]``: ``null`` → ``""``, booleans →
  ``"true"``/``"false"``, numbers → their decimal text; envelope keys other than ``Result`` are
  ignored; a body that is not a JSON ``{"ResultSet": {"Result": [ {...}, ... ]}}`` raises
  ``BadResponseError`` (a 200 HTML login page lands here).
* A file's ``digest`` is kept only if it is a 32-hex MD5 (lower-cased); otherwise None.
* ``Size`` is trusted as given, except ``"0"``: XNAT reports 0 in some listing paths
  (``CatalogUtils.getEntryDetails``), so 0 counts only when the digest is the MD5 of empty
  content; with no digest or another digest the size is None (unknown). Empty, negative or
  non-numeric sizes are None as well.
* Object-level resources (project, subject, experiment) have ``container`` and
  ``container_type`` ``""``: XNAT fills ``cat_id`` for them inconsistently (the experiment ID or
  empty), and the journal key must not depend on that.
* The resource name is the resource label, else the file row's ``collection``, else the numeric
  resource id from the URI (unlabelled resources).
* ``path`` is the listed URI after ``…/resources/<id>/files/``, percent-decoded — unless the
  decoded basename disagrees with the ``Name`` column while the raw one agrees (a name that
  itself contains ``%``). ``uri`` is rebuilt from the decoded parts with ``routes`` encoding.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from xnatsync.errors import (
    AuthError,
    BadResponseError,
    NotFoundError,
    PermissionDeniedError,
    RemoteError,
    TransientRemoteError,
    TruncatedResponseError,
    redact,
)
from xnatsync.model import Experiment, Level, RemoteFile
from xnatsync.xnat import routes

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SNIPPET_CHARS = 200

_MD5 = re.compile(r"[0-9a-f]{32}")
_H3 = re.compile(r"<h3>(.*?)</h3>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_FILE_URI = re.compile(r"^(?P<base>.*?/resources/[^/]+)/files/(?P<path>.+)$")
_CATEGORY_LEVEL = {
    "scans": Level.SCAN,
    "resources": Level.EXPERIMENT,
    "assessors": Level.ASSESSOR,
    "reconstructions": Level.RECONSTRUCTION,
}
_OBJECT_LEVELS = (Level.PROJECT, Level.SUBJECT, Level.EXPERIMENT)


# ---------------------------------------------------------------------------------------------
# Statuses → errors


def summarise(body: bytes | str) -> str:
    """A short, redacted, one-line description of an error body (for messages only)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    match = _H3.search(text)
    if match:
        text = match.group(1)
    text = " ".join(_TAG.sub(" ", text).split())
    if len(text) > SNIPPET_CHARS:
        text = text[:SNIPPET_CHARS] + "…"
    return redact(text)


def parse_retry_after(value: str | None, *, date: str | None, now: float | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None.

    An HTTP-date is measured against the response's own ``Date`` header when present (immune to
    clock skew), else against ``now`` (epoch seconds); past dates give 0.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        target = _http_date(value)
        reference = _http_date(date) if date else None
        if reference is None:
            reference = now
        if target is None or reference is None:
            return None
        seconds = target - reference
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_FOR_GOOD = frozenset({501, 505})  # not implemented, version not supported: a retry won't help


def raise_for_status(
    status: int,
    headers: Mapping[str, str],
    body_snippet: bytes | str,
    url: str,
    *,
    now: float | None = None,
) -> None:
    """Raise the typed error for a non-success status; return for 1xx–3xx."""
    if status < 400:
        return
    where = redact(url)
    detail = summarise(body_snippet)
    message = f"HTTP {status} for {where}" + (f": {detail}" if detail else "")
    if status == 401:
        raise AuthError(message)
    if status == 403:
        raise PermissionDeniedError(message)
    if status == 404:
        raise NotFoundError(message, status=status, url=where)
    if status in (408, 429) or (status >= 500 and status not in _FOR_GOOD):
        retry_after = parse_retry_after(
            headers.get("Retry-After"), date=headers.get("Date"), now=now
        )
        raise TransientRemoteError(message, status=status, url=where, retry_after=retry_after)
    raise RemoteError(message, status=status, url=where)


# ---------------------------------------------------------------------------------------------
# ResultSet → rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def decode_json(body: bytes, *, url: str = "") -> Any:
    """A JSON document; ``TruncatedResponseError`` (retryable) if it was cut short in transit,
    ``BadResponseError`` if the server answered something else (an HTML page, say)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        cut = body.lstrip()[:1] in (b"{", b"[")
        kind = TruncatedResponseError if cut else BadResponseError
        where = redact(url)
        raise kind(
            f"expected a JSON listing from {where or 'the server'}, got: {summarise(body)!r}",
            url=where,
        ) from exc


def rows_of(document: Any, *, url: str = "") -> list[dict[str, str]]:
    """The rows of a decoded ``ResultSet``; ``BadResponseError`` for any other shape."""
    result_set = document.get("ResultSet") if isinstance(document, dict) else None
    result = result_set.get("Result") if isinstance(result_set, dict) else None
    if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
        where = redact(url)
        raise BadResponseError(
            f"listing from {where or 'the server'} is not a ResultSet of rows", url=where
        )
    return [_row(row) for row in result]


_STR = frozenset({str})


def _row(row: dict[Any, Any]) -> dict[str, str]:
    """One row with string cells. XNAT's cells are nearly always strings already: those rows
    are kept as they are (a 10,000-row listing is 100,000 cells; converting each costs)."""
    if set(map(type, row.values())) <= _STR:  # JSON's keys are strings already
        return row
    return {str(k): _cell(v) for k, v in row.items()}


def parse_result_set(body: bytes, *, url: str = "") -> list[dict[str, str]]:
    """Rows of an XNAT ``ResultSet`` listing; ``BadResponseError`` for anything else."""
    return rows_of(decode_json(body, url=url), url=url)


def _get(row: Mapping[str, str], key: str) -> str:
    """A column by name, tolerating a different letter case (XML-path columns come lower-case)."""
    if key in row:
        return row[key]
    lowered = key.lower()
    for name, value in row.items():
        if name.lower() == lowered:
            return value
    return ""


def experiments_from_rows(project: str, rows: Iterable[Mapping[str, str]]) -> list[Experiment]:
    """Experiments of a project listing, in server order; a row without ``ID`` is an error."""
    found: list[Experiment] = []
    for row in rows:
        exp_id = _get(row, "ID").strip()
        if not exp_id:
            raise BadResponseError(f"experiment row without an ID in project {project!r}")
        found.append(
            Experiment(
                id=exp_id,
                label=_get(row, "label") or exp_id,
                project=_get(row, "project") or project,
                subject_id=_get(row, "subject_ID"),
                subject_label=_get(row, "subject_label"),
                xsi_type=_get(row, "xsiType"),
                date=_get(row, "date"),
                insert_date=_get(row, "insert_date"),
                last_modified=_get(row, "last_modified"),
            )
        )
    return found


# ---------------------------------------------------------------------------------------------
# Files listings → RemoteFile


@dataclass(frozen=True, slots=True)
class _Owner:
    """What the request context knows about the object whose files are listed."""

    project: str
    level: Level
    subject_id: str = ""
    subject: str = ""
    experiment_id: str = ""
    experiment: str = ""


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a listed file URI says about where the file hangs."""

    level: Level
    subject_id: str
    experiment_id: str
    container: str
    resource_id: str
    base: str  # canonical encoded prefix up to and including resources/<id>


def _uri_shape(uri: str) -> tuple[_Shape, str] | None:
    """Split a listed file URI into its shape and the raw (still encoded) relative path."""
    match = _FILE_URI.match(uri)
    if match is None:
        return None
    shape = _base_shape(match.group("base"))
    return None if shape is None else (shape, match.group("path"))


@functools.lru_cache(maxsize=4096)
def _base_shape(base: str) -> _Shape | None:
    """The shape of a URI prefix up to ``resources/<id>``: shared by every file of a resource,
    so it is parsed once per resource, not once per file."""
    parts = [unquote(p) for p in base.split("/") if p]
    while parts and parts[0] in ("data", "REST", "archive"):
        parts.pop(0)
    if len(parts) < 2 or parts[-2] != "resources":
        return None
    fields = {"subjects": "", "experiments": "", "container": ""}
    level = Level.PROJECT
    kinds = {
        "projects": Level.PROJECT,
        "subjects": Level.SUBJECT,
        "experiments": Level.EXPERIMENT,
        "scans": Level.SCAN,
        "assessors": Level.ASSESSOR,
        "reconstructions": Level.RECONSTRUCTION,
    }
    owner_parts = parts[:-2]
    for kind, value in zip(owner_parts[::2], owner_parts[1::2], strict=False):
        if kind not in kinds:
            break  # e.g. assessors/{A}/out: the trailing in/out/type segment ends the walk
        level = kinds[kind]
        key = kind if kind in ("subjects", "experiments") else "container"
        fields[key] = value
    try:
        base = "/data/" + "/".join(routes.segment(p) for p in parts)
    except ValueError:
        return None
    return _Shape(
        level=level,
        subject_id=fields["subjects"],
        experiment_id=fields["experiments"],
        container=fields["container"] if level not in _OBJECT_LEVELS else "",
        resource_id=parts[-1],
        base=base,
    )


def _relative_path(raw: str, name: str) -> str:
    decoded = unquote(raw)
    if name and decoded.rsplit("/", 1)[-1] != name and raw.rsplit("/", 1)[-1] == name:
        return raw
    return decoded


def _size(text: str, digest: str | None) -> int | None:
    try:
        size = int(text.strip())
    except ValueError:
        return None
    if size < 0 or (size == 0 and digest != EMPTY_MD5):
        return None
    return size


def _digest(text: str) -> str | None:
    digest = text.strip().lower()
    return digest if _MD5.fullmatch(digest) else None


def _placement(
    owner: _Owner, shape: _Shape, resource: Mapping[str, str] | None
) -> tuple[Level, str, str]:
    """(level, container, container_type): from the resource row, else from the URI."""
    if resource is not None:
        level = _CATEGORY_LEVEL.get(_get(resource, "category").strip().lower())
        if owner.level is not Level.EXPERIMENT:
            level = owner.level  # project/subject listings hold only that object's resources
        if level is not None:
            if level in _OBJECT_LEVELS:
                return level, "", ""
            return level, _get(resource, "cat_id").strip(), _get(resource, "cat_desc").strip()
    return shape.level, shape.container, ""


def _remote_file(
    owner: _Owner, row: Mapping[str, str], resources: Mapping[str, Mapping[str, str]]
) -> RemoteFile:
    uri = _get(row, "URI")
    split = _uri_shape(uri)
    if split is None:
        raise BadResponseError(f"file row with an unexpected URI: {redact(uri)!r}")
    shape, raw_path = split
    resource = resources.get(_get(row, "cat_ID").strip())
    level, container, container_type = _placement(owner, shape, resource)
    path = _relative_path(raw_path, _get(row, "Name"))
    try:
        canonical = routes.file_uri(shape.base, path)
    except ValueError:
        canonical = uri  # an unusable path: keep it as listed, the layout stage rejects it
    label = (_get(resource, "label") if resource else "") or _get(row, "collection")
    digest = _digest(_get(row, "digest"))
    subject_id = owner.subject_id or shape.subject_id
    experiment_id = owner.experiment_id or shape.experiment_id
    return RemoteFile(
        project=owner.project,
        subject_id=subject_id,
        subject=owner.subject or subject_id,
        experiment_id=experiment_id,
        experiment=owner.experiment or experiment_id,
        level=level,
        container=container,
        container_type=container_type,
        resource=label.strip() or shape.resource_id,
        path=path,
        uri=canonical,
        size=_size(_get(row, "Size"), digest),
        digest=digest,
    )


def resources_named(file_rows: Iterable[Mapping[str, str]]) -> bool:
    """Whether every row of a files listing names its resource (``collection``)."""
    return all(_get(row, "collection").strip() for row in file_rows)


def _files(
    owner: _Owner,
    resource_rows: Iterable[Mapping[str, str]],
    file_rows: Iterable[Mapping[str, str]],
) -> list[RemoteFile]:
    by_id = {_get(r, "xnat_abstractresource_id").strip(): r for r in resource_rows}
    by_id.pop("", None)
    return [_remote_file(owner, row, by_id) for row in file_rows]


def files_from_listing(
    project: str,
    experiment: Experiment,
    resource_rows: Iterable[Mapping[str, str]],
    file_rows: Iterable[Mapping[str, str]],
) -> list[RemoteFile]:
    """Join ``files?all=true`` rows with ``resources?all=true`` rows of one experiment."""
    owner = _Owner(
        project=project,
        level=Level.EXPERIMENT,
        subject_id=experiment.subject_id,
        subject=experiment.subject_label,
        experiment_id=experiment.id,
        experiment=experiment.label,
    )
    return _files(owner, resource_rows, file_rows)


def project_files_from_listing(
    project: str,
    resource_rows: Iterable[Mapping[str, str]],
    file_rows: Iterable[Mapping[str, str]],
) -> list[RemoteFile]:
    """Files of the project's own resources."""
    return _files(_Owner(project=project, level=Level.PROJECT), resource_rows, file_rows)


def subject_files_from_listing(
    project: str,
    subject_id: str,
    subject_label: str,
    resource_rows: Iterable[Mapping[str, str]],
    file_rows: Iterable[Mapping[str, str]],
) -> list[RemoteFile]:
    """Files of one subject's own resources."""
    owner = _Owner(
        project=project, level=Level.SUBJECT, subject_id=subject_id, subject=subject_label
    )
    return _files(owner, resource_rows, file_rows)


_IN_RESOURCE = re.compile(r"/resources/[^/]+/files/(.+)$")


def resource_catalog(rows: Iterable[Mapping[str, str]]) -> dict[str, tuple[int | None, str | None]]:
    """One resource's files listing as {path in the resource: (size, digest)} (sizes and
    digests read as the archive listings are: an unusable value is None)."""
    out: dict[str, tuple[int | None, str | None]] = {}
    for row in rows:
        found = _IN_RESOURCE.search(_get(row, "URI"))
        if found is None:
            continue
        raw = found.group(1)
        digest = _digest(_get(row, "digest"))
        out[_relative_path(raw, _get(row, "Name"))] = (_size(_get(row, "Size"), digest), digest)
    return out


_BUSY = (
    "session processing", "concurrent modification", "duplicate archive attempt",
    "destination session in use",
)  # fmt: skip


def import_busy(status: int | None, message: str) -> bool:
    """Whether an import-service refusal is XNAT's "busy, try later" (xnat-api §12: 400 on the
    import service, 409/423 from the archiver), not a refusal that will not change."""
    text = message.lower()
    return status in (400, 409, 423) and any(marker in text for marker in _BUSY)
