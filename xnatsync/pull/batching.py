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

Batching is an optimisation, never a path to a different result: each member is verified against
the catalog (size and MD5) exactly as a single download is, and whatever a zip does not deliver
intact is fetched file by file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from xnatsync.model import RemoteFile
from xnatsync.xnat.routes import url_keeps_name


class Wanted(Protocol):
    """A planned download, as batching sees it: the remote file it fetches."""

    @property
    def remote(self) -> RemoteFile: ...


D = TypeVar("D", bound=Wanted)

_RESOURCE_URI = re.compile(r"^(?P<base>.*?/resources/[^/]+)/files/.")


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a resource's files are fetched as one zip."""

    min_files: int = 8
    max_mean_size: int = 1 << 20
    max_bytes: int = 512 << 20


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


def _worth_a_zip(members: list[D], listed: int, policy: BatchPolicy) -> bool:
    total = sum(d.remote.size or 0 for d in members)
    return (
        len(members) == listed
        and len(members) >= policy.min_files
        and total <= policy.max_bytes
        and total <= policy.max_mean_size * len(members)
    )
