"""The catalog race of XNAT 1.8 (`--faults catalog-race=1`), and the files it leaves uncatalogued.

XNAT writes a resource's catalog only if the catalog file's checksum still equals the one it
read when the upload began; otherwise the write throws `ConcurrentModificationException` and the
upload answers 500 (xnat-api §7; CatalogUtils.writeCatalogToFile). The upload path
(CatalogUtils.storeCatalogEntry) reads the catalog, writes every file, then writes the catalog:

* in-body uploads (also `extract=true` archives) stream the request body from the socket while
  writing the file, so their window spans the whole body transfer;
* multipart bodies are parsed and spooled before the catalog is read, so their window opens only
  once the whole request arrived (`Faults.hold_catalog_write` stands in for the slow disk work
  that keeps it open on a real server).

Of two uploads to one resource whose windows overlap, the one whose catalog write comes second
fails, with all its files. Those files stay on the server's disk but out of the catalog
("orphans"): not listed, not downloadable, yet a later upload of the same name without
`overwrite=true` is answered as a duplicate (XNAT sees the file on disk) and still not
catalogued; with `overwrite=true` it is catalogued. Different resources have different catalogs
and never conflict. Rule for clients: at most one writer per resource, and a 500 after the body
was sent is resolved by looking, not by sending again.

The emulator's catalog "checksum" is the resource's id and a fingerprint of its entries (path,
size, digest, mtime), or None while the resource does not exist. Orphans are kept in memory only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from xnatsync.emulator.records import Owner, Resource
from xnatsync.emulator.store import Store

State = tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What an upload saw when it read the catalog."""

    state: State


def catalog_state(resource: Resource | None) -> State:
    """The catalog "checksum" of a resource (None: no resource, hence no catalog file)."""
    if resource is None:
        return None
    entries = tuple((e.relpath, e.size, e.digest, e.mtime) for e in resource.files.values())
    return resource.id, hash(entries)


@dataclass(slots=True)
class Catalogs:
    """Catalog snapshots for the race, and each resource's files left out of its catalog."""

    _orphans: dict[int, set[str]] = field(default_factory=dict)

    def read(self, store: Store, owner: Owner, key: str) -> Snapshot:
        """Read the catalog of the resource `key` (label or id) of `owner`."""
        return Snapshot(catalog_state(store.resource(owner, key)))

    def changed(self, store: Store, owner: Owner, key: str, seen: Snapshot) -> bool:
        """Whether the catalog changed since `seen` was read (the write would fail)."""
        return catalog_state(store.resource(owner, key)) != seen.state

    def orphan(self, resource: Resource | None, relpaths: list[str]) -> None:
        """Record files written to disk but left out of the catalog."""
        if resource is not None:
            self._orphans.setdefault(resource.id, set()).update(relpaths)

    def is_orphan(self, resource: Resource, relpath: str) -> bool:
        """Whether `relpath` is on disk without a catalog entry."""
        return relpath in self._orphans.get(resource.id, ())

    def adopt(self, resource: Resource, relpath: str) -> None:
        """`relpath` got a catalog entry: it is no orphan any more."""
        self._orphans.get(resource.id, set()).discard(relpath)


CATALOGS_KEY: web.AppKey[Catalogs] = web.AppKey("xnat_catalogs", Catalogs)


def conflict_message(resource_label: str) -> str:
    """The 500 answer's message (XNAT's `ConcurrentModificationException` text, shortened)."""
    return (
        f"ConcurrentModificationException: another thread or process modified "
        f"{resource_label}_catalog.xml since this upload read it"
    )
