"""Which downloads to fetch as one zip per resource instead of one request per file (pure).

XNAT answers ``…/resources/{id}/files?format=zip`` with every file of a resource in one
streamed response. For many small files the cost of a request (a catalog lookup on the server,
a round trip) dominates the bytes, so one zip per resource is far cheaper than one GET per file;
for large files it buys nothing and spools the bytes twice.

A resource is batched when:

* every file the listing gives for it is to be downloaded: a partly present resource is
  finished file by file, so no byte that is already verified is fetched again;
* every size is known, there are at least ``min_files``, the mean size is at most
  ``max_mean_size`` and the total at most ``max_bytes`` (the zip is spooled to disk first).

A resource holding a file XNAT cannot serve by its URL (a name it would read escaped,
``routes.url_keeps_name``) is fetched as a zip whatever the rule above says: the zip is the
only way to that file (its other members that are not due are not extracted).

Whole scans of a session go further, as one zip of several scans (``…/experiments/{E}/scans/
1,2,3/files?format=zip``, xnat-api §4.2; ``group_scans``): a scan joins a group when every file
the listing gives for it (all its resources) is to be downloaded, every size is known, its mean
size is at most ``max_mean_size`` and its ID is plain (it goes into the URL's comma list); the
scans of a session are packed in listing order into groups of at most ``group_bytes`` and
``group_scans`` scans. A group of one resource is left to that resource's zip. Such a zip is
one request where a session would otherwise make one per resource, but it fills one stream
only: ``SessionGate`` lets a run use them only once at least as many are due as the run has
streams, so that the first sessions of a run (and a run of a few sessions) still spread over
every stream.

Batching is an optimisation, never a path to a different result: each member is verified against
the catalog (size and MD5) exactly as a single download is, and whatever a zip does not deliver
intact is fetched file by file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from xnatsync.model import RemoteFile
from xnatsync.xnat.routes import url_keeps_name


class Wanted(Protocol):
    """A planned download, as batching sees it: the remote file it fetches."""

    @property
    def remote(self) -> RemoteFile: ...


D = TypeVar("D", bound=Wanted)

_RESOURCE_URI = re.compile(r"^(?P<base>.*?/resources/[^/]+)/files/.")
_SCAN_URI = re.compile(
    r"^(?P<session>.*?/experiments/[^/]+)/scans/(?P<scan>[^/]+)/resources/[^/]+/files/."
)
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._~-]+$")  # needs no escaping, and is no comma list


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a resource's files are fetched as one zip."""

    min_files: int = 8
    max_mean_size: int = 1 << 20
    max_bytes: int = 512 << 20
    group_bytes: int = 2 << 20  # scans zipped together: about a second on a slow long-haul stream
    group_scans: int = 100  # scan IDs in one request's URL; 0: no scan-group zips


@dataclass(frozen=True, slots=True)
class ScanGroup(Generic[D]):
    """Whole scans of one session to fetch as one zip: ``uri`` is ``…/experiments/{E}/scans/
    {id},{id}…`` (the listed session URI and the scans' IDs as listed), ``/files?format=zip``
    appended by the client."""

    uri: str
    downloads: tuple[D, ...]


class SessionGate:
    """Lets scan-group zips through once at least ``streams`` of them are due in the run.

    A group zip fills one stream; a run of a few sessions fetched that way would leave the
    other streams idle while there is work. So the first groups of a run are fetched per
    resource (as many requests as resources), and once the run has met ``streams`` groups,
    every later one comes whole: by then enough are due to keep every stream busy."""

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.due = 0

    def admit(self, groups: int) -> bool:
        """Note ``groups`` more groups due; whether to fetch them as group zips."""
        self.due += groups
        return self.due >= self.streams


def resource_uri(remote: RemoteFile) -> str | None:
    """The listed URI of the resource holding ``remote`` (up to ``resources/<id>``)."""
    match = _RESOURCE_URI.match(remote.uri)
    return match.group("base") if match else None


def choose_batches(
    downloads: Sequence[D], listed: Iterable[RemoteFile], policy: BatchPolicy
) -> tuple[list[tuple[D, ...]], list[D]]:
    """Split ``downloads`` into zip batches (one per resource) and single downloads.

    ``listed`` is every file of the owner's listing, to tell whole resources from partial ones.
    """
    listed_per_resource = Counter(resource_uri(r) for r in listed)
    groups: dict[str, list[D]] = {}
    singles: list[D] = []
    for download in downloads:
        base = resource_uri(download.remote)
        if base is None or download.remote.size is None:
            singles.append(download)
        else:
            groups.setdefault(base, []).append(download)
    batches: list[tuple[D, ...]] = []
    for base, members in groups.items():
        if _worth_a_zip(members, listed_per_resource[base], policy) or any(
            not url_keeps_name(d.remote.path) for d in members
        ):
            batches.append(tuple(members))
        else:
            singles.extend(members)
    return batches, singles


def scan_of(remote: RemoteFile) -> tuple[str, str] | None:
    """(listed session URI, scan ID as listed) of a scan's file; None for any other file."""
    match = _SCAN_URI.match(remote.uri)
    return (match.group("session"), match.group("scan")) if match else None


def group_scans(
    downloads: Sequence[D], listed: Iterable[RemoteFile], policy: BatchPolicy
) -> tuple[list[ScanGroup[D]], list[D]]:
    """Split ``downloads`` into scan-group zips and the rest, in their order (see the module
    docstring). ``listed`` is every file of the owner's listing, to tell whole scans."""
    if policy.group_scans < 1:
        return [], list(downloads)
    listed_per_scan = Counter(scan_of(r) for r in listed)
    per_scan: dict[tuple[str, str], list[D]] = {}
    for download in downloads:
        scan = scan_of(download.remote)
        if scan is not None and _PLAIN_ID.match(scan[1]):
            per_scan.setdefault(scan, []).append(download)
    sessions: dict[str, list[tuple[str, str]]] = {}
    for scan, members in per_scan.items():
        if _whole_and_small(members, listed_per_scan[scan], policy):
            sessions.setdefault(scan[0], []).append(scan)
    groups: list[ScanGroup[D]] = []
    for session, scans in sessions.items():
        for chosen in _pack(scans, per_scan, policy):
            members = [d for scan in chosen for d in per_scan[scan]]
            resources = {resource_uri(d.remote) for d in members}
            if len(resources) >= 2 and len(members) >= policy.min_files:
                ids = ",".join(scan[1] for scan in chosen)
                groups.append(ScanGroup(f"{session}/scans/{ids}", tuple(members)))
            # else one resource (its own zip is the same one request) or too few files
    grouped = {id(d) for g in groups for d in g.downloads}
    return groups, [d for d in downloads if id(d) not in grouped]


def _whole_and_small(members: list[D], listed: int, policy: BatchPolicy) -> bool:
    """Every listed file of the scan is due, sizes known, small on average, under a group."""
    if len(members) != listed or any(d.remote.size is None for d in members):
        return False
    total = sum(d.remote.size or 0 for d in members)
    return total <= policy.group_bytes and total <= policy.max_mean_size * len(members)


def _pack(
    scans: list[tuple[str, str]], per_scan: dict[tuple[str, str], list[D]], policy: BatchPolicy
) -> list[list[tuple[str, str]]]:
    """Scans in listing order, cut into runs of at most ``group_bytes`` and ``group_scans``."""
    packs: list[list[tuple[str, str]]] = []
    size = 0
    for scan in scans:
        scan_size = sum(d.remote.size or 0 for d in per_scan[scan])
        full = not packs or len(packs[-1]) >= policy.group_scans
        if full or size + scan_size > policy.group_bytes:
            packs.append([])
            size = 0
        packs[-1].append(scan)
        size += scan_size
    return packs


def _worth_a_zip(members: list[D], listed: int, policy: BatchPolicy) -> bool:
    total = sum(d.remote.size or 0 for d in members)
    return (
        len(members) == listed
        and len(members) >= policy.min_files
        and total <= policy.max_bytes
        and total <= policy.max_mean_size * len(members)
    )
