"""XNAT REST paths and query parameters, built as values (no I/O).

Every route is a ``Route(path, params)``: ``path`` is already percent-encoded and relative to the
server's base URL (which may carry a context path such as ``/xnat``); ``params`` are plain
strings that the HTTP layer encodes. Listings always ask for ``format=json`` (xnat-api §1.2).

Invariants:

* Identifiers (project, subject, experiment) are one path segment each: every character outside
  RFC 3986 ``pchar`` is percent-encoded, and so are ``/``, ``+``, ``?``, ``#`` and ``%``.
* File paths keep ``/`` between segments; a space becomes ``%20`` and a ``+`` becomes ``%2B``.
  XNAT decodes a file path only when it contains ``%20`` or ``%2B`` and then also turns a literal
  ``+`` into a space (xnat-api §4.1), so a ``+`` must never travel literally. Sub-delimiters such
  as ``(``, ``)``, ``,`` stay literal, because a path with ``%28`` but no ``%20`` is not decoded
  by XNAT and would not be found.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, urlsplit

from xnatsync.errors import UsageError, redact

EXPERIMENT_COLUMNS = (
    "ID,label,project,subject_ID,subject_label,xsiType,date,insert_date,last_modified"
)
SUBJECT_COLUMNS = "ID,label,project,insert_date,last_modified"
SESSION = "/data/JSESSION"

# RFC 3986 pchar minus "+" (see the module docstring); "/" is handled by the callers.
_SEGMENT_SAFE = "!$&'()*,;=:@~"


class Route(NamedTuple):
    """A request target: an encoded path below the base URL and its query parameters."""

    path: str
    params: dict[str, str]


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash if it can be an XNAT base URL; ``UsageError`` if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"not an XNAT URL: {redact(url)!r} (expected http(s)://host[:port][/path])"
        )
    if parts.username or parts.password:
        raise UsageError(
            "put credentials in XNATSYNC_USER/XNATSYNC_PASSWORD or ~/.netrc, not the URL"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"the XNAT URL must not have a query or fragment: {redact(url)!r}")
    return url.rstrip("/")


def segment(value: str) -> str:
    """Percent-encode one path segment; refuse values that would change the path's shape."""
    if value in ("", ".", ".."):
        raise ValueError(f"not a usable path segment: {value!r}")
    return quote(value, safe=_SEGMENT_SAFE)


def file_path(path: str) -> str:
    """Percent-encode a "/"-separated relative file path, keeping the separators."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a relative file path: {path!r}")
    return "/".join(quote(p, safe=_SEGMENT_SAFE) for p in parts)


def url_keeps_name(path: str) -> bool:
    """Whether XNAT reads ``path`` back from a URL as it is. Its ``FileList`` decodes the file
    path of a URL only when it holds ``%20`` or ``%2B`` (xnat-api §4.1); otherwise the escaped
    text *is* the name, so ``ü.txt`` (``%C3%BC.txt``) or ``a%b`` (``a%25b``) would be stored
    and looked for under the escaped name. Such files travel in zips, whose member names are
    the files' own."""
    encoded = file_path(path)
    return "%" not in encoded or "%20" in encoded or "%2B" in encoded


def _json(**extra: str) -> dict[str, str]:
    return {"format": "json", **extra}


def projects() -> Route:
    return Route("/data/projects", _json())


def writable_projects() -> Route:
    """The projects where the user may create subjects (and so sessions): what XNAT's upload
    tools ask before sending."""
    return Route("/data/projects", _json(permissions="create", dataType="xnat:subjectData"))


def subjects(project: str) -> Route:
    """A project's subjects with their dates (``last_modified`` is not a default column)."""
    return Route(f"/data/projects/{segment(project)}/subjects", _json(columns=SUBJECT_COLUMNS))


def experiments(project: str) -> Route:
    """Subject assessors of (and shared into) a project, with the columns ``Experiment`` needs."""
    return Route(
        f"/data/projects/{segment(project)}/experiments", _json(columns=EXPERIMENT_COLUMNS)
    )


def recent_experiments(days: int, limit: int) -> Route:
    """Image sessions whose dates or workflows fall in the last ``days`` (xnat-api §3.3.2)."""
    return Route("/data/experiments", _json(recent=str(days), limit=str(limit)))


def experiment_resources(experiment_id: str) -> Route:
    """Every resource of a session: its own, its scans', reconstructions' and assessors'."""
    return Route(f"/data/experiments/{segment(experiment_id)}/resources", _json(all="true"))


def experiment_files(experiment_id: str) -> Route:
    """Every file of a session in one listing (URIs shaped as xnat-api §3.8)."""
    return Route(f"/data/experiments/{segment(experiment_id)}/files", _json(all="true"))


def project_resources(project: str) -> Route:
    return Route(f"/data/projects/{segment(project)}/resources", _json())


def project_files(project: str) -> Route:
    return Route(f"/data/projects/{segment(project)}/files", _json())


def _subject_base(project: str, subject_id: str) -> str:
    return f"/data/projects/{segment(project)}/subjects/{segment(subject_id)}"


def subject_resources(project: str, subject_id: str) -> Route:
    return Route(f"{_subject_base(project, subject_id)}/resources", _json())


def subject_files(project: str, subject_id: str) -> Route:
    return Route(f"{_subject_base(project, subject_id)}/files", _json())


def saved_search(search_id: str) -> Route:
    """A stored search's ``xdat:bundle`` document (xnat-api §6.1)."""
    return Route(f"/data/search/saved/{segment(search_id)}", {"format": "xml"})


def search() -> Route:
    """Run a search document (POSTed as ``text/xml``)."""
    return Route("/data/search", _json())


def issue_token() -> Route:
    """A new alias token for the session's user (xnat-api §2.3)."""
    return Route("/data/services/tokens/issue", {})


def invalidate_token(alias: str) -> Route:
    """Disable a token by its alias (the secret never travels in a URL)."""
    return Route(f"/data/services/tokens/invalidate/{segment(alias)}", {})


def file_uri(resource_base: str, path: str) -> str:
    """``{resource_base}/files/{path}`` with the path encoded; the base must already be encoded.

    ``resource_base`` is the part of a listed URI up to and including ``resources/<id>``.
    """
    return f"{resource_base.rstrip('/')}/files/{file_path(path)}"


# -- writes (xnat-api §4.4, §4.5): objects are addressed by label within the project --------


def subject(project: str, label: str) -> Route:
    """PUT creates the subject (201 + ID) or leaves it (200 + ID)."""
    return Route(f"/data/projects/{segment(project)}/subjects/{segment(label)}", {})


def session(project: str, subject_label: str, label: str, xsi_type: str) -> Route:
    """PUT creates the session (and its subject) with this type, or leaves an existing one."""
    path = f"/data/projects/{segment(project)}/subjects/{segment(subject_label)}"
    return Route(f"{path}/experiments/{segment(label)}", {"xsiType": xsi_type})


def scan(
    project: str, subject_label: str, session_label: str, scan_id: str, xsi_type: str, kind: str
) -> Route:
    """PUT creates the scan with its type (a concrete scan ``xsiType`` is required)."""
    path = owner_path(project, subject_label, session_label, scan_id)
    params = {"xsiType": xsi_type, **({f"{xsi_type}/type": kind} if kind else {})}
    return Route(path, params)


def owner_path(
    project: str,
    subject_label: str = "",
    session_label: str = "",
    scan_id: str = "",
    *,
    kind: str = "scans",
) -> str:
    """The path of a project, subject, session or one of the session's ``kind`` (scans,
    assessors, reconstructions) by labels (what is given decides). An assessor's or
    reconstruction's resources are its OUT ones at this path (XNAT's default side)."""
    path = f"/data/projects/{segment(project)}"
    if subject_label:
        path += f"/subjects/{segment(subject_label)}"
        if session_label:
            path += f"/experiments/{segment(session_label)}"
            if scan_id:
                path += f"/{kind}/{segment(scan_id)}"
    return path


def session_members(project: str, subject_label: str, session_label: str, kind: str) -> Route:
    """A session's assessors or reconstructions (``kind``): their IDs and labels."""
    return Route(owner_path(project, subject_label, session_label) + f"/{kind}", _json())


def resource_file(owner: str, resource: str, path: str, *, overwrite: bool) -> Route:
    """Upload target of one file (the resource is created by the first upload, §4.4)."""
    params = {"overwrite": "true"} if overwrite else {}
    return Route(f"{owner}/resources/{segment(resource)}/files/{file_path(path)}", params)


def resource_zip(owner: str, resource: str, name: str) -> Route:
    """Upload target of a zip the server unpacks into the resource, keeping its members'
    paths and not the zip (``extract=true``, §4.4); ``name`` must end in ``.zip``."""
    return Route(f"{owner}/resources/{segment(resource)}/files/{segment(name)}",
                 {"extract": "true"})  # fmt: skip


def resource_files(owner: str, resource: str) -> Route:
    """One resource's files listing (to check what an upload left there)."""
    return Route(f"{owner}/resources/{segment(resource)}/files", _json())


def import_service(
    destination: str, *, overwrite: str, subject: str = "", session: str = ""
) -> Route:
    """The DICOM-zip import into ``destination`` (``/archive/projects/P/subjects/S/experiments/E``
    or ``/prearchive/projects/P`` with the labels as parameters), ``overwrite`` explicit
    (xnat-api §5.1)."""
    params = {"import-handler": "DICOM-zip", "dest": destination, "overwrite": overwrite}
    if subject:
        params["SUBJECT_ID"] = subject
    if session:
        params["EXPT_LABEL"] = session
    return Route("/data/services/import", params)


def prearchive_destination(project: str) -> str:
    return f"/prearchive/projects/{segment(project)}"


def prearchive_sessions(project: str) -> Route:
    return Route(f"/data/prearchive/projects/{segment(project)}", _json())


def prearchive_listing(session_url: str, below: str = "") -> Route:
    """A listing below a prearchive session's ``url`` (as its row gives it, already encoded)."""
    return Route(f"/data{session_url.rstrip('/')}{below}", _json())


def archive_destination(project: str, subject_label: str, session_label: str) -> str:
    return (
        f"/archive/projects/{segment(project)}/subjects/{segment(subject_label)}"
        f"/experiments/{segment(session_label)}"
    )
