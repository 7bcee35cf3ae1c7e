"""What to send: local files against the target's catalog, grouped by resource (pure).

Rules (issue 9):

* A file the catalog has with the local size and MD5 is skipped. Where the server lists no
  digest, the size alone decides, and the plan says how many files were compared so.
* A file the catalog lacks is sent. One it has with other content is a conflict, left alone
  and reported, unless ``overwrite``: then it is sent with ``overwrite=true``.
* One action per resource: its files go one after another, so a resource never has two
  writers at once (XNAT's catalog file is not safe under concurrent writers, xnat-api §7);
  different resources go in parallel.
* Many small new files of one resource go as zips that XNAT unpacks into it (``extract=true``,
  xnat-api §4.4): when at least ``ZipRule.min_files`` are new (not replacing anything, not
  empty) and their mean size is at most ``ZipRule.max_mean_size`` (128 KiB: measured), in zips
  of at most ``ZipRule.max_bytes``. A request costs the server a catalog read and write
  whatever its size, so this trades thousands of requests for a few; large files gain nothing
  from it (the server writes a zip twice: spooled, then unpacked). Files that
  replace the server's copy, and empty ones, go one by one — except a file whose name XNAT
  would read wrongly from a URL (``routes.url_keeps_name``: ``ü.txt`` without a space in its
  path), which goes in a zip, even alone, and also with ``--no-zip``; one that would replace
  the server's copy fails saying so (push does not replace through zips).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from xnatsync.model import Level, RemoteFile
from xnatsync.push.tree import Target
from xnatsync.xnat.routes import url_keeps_name


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """One local file, where it goes, and what it holds. ``md5`` comes from the push journal
    when size and mtime are unchanged since it was recorded, else from hashing before planning
    where the server lists the file (there is something to compare); a file the server does not
    have is hashed while it is sent (``md5`` None until then)."""

    relpath: str
    target: Target
    size: int
    mtime_ns: int
    md5: str | None


@dataclass(frozen=True, slots=True)
class Listed:
    """What the target's catalog says of a file."""

    size: int | None
    digest: str | None


@dataclass(frozen=True, slots=True)
class ZipRule:
    """When a resource's new files go as zips (module rules)."""

    min_files: int = 8  # as pull's zips: below this, a zip saves too few requests
    # measured (make bench, quiet VM): 10 files of 512 KiB a resource went at 0.53 of the PUT
    # loop's speed as zips on loopback (the server writes each zip twice: spooled, then
    # unpacked) but 2.0 x over a long network path; files of 16 KiB break even on loopback
    # and gain on a long path. Below 128 KiB on average, then.
    max_mean_size: int = 128 << 10
    max_bytes: int = 512 << 20

    def batches(self, files: list[LocalEntry]) -> tuple[list[list[LocalEntry]], list[LocalEntry]]:
        """(zips, files left to send one by one) of a resource's new files. A file whose name
        XNAT would read wrongly from a URL (``routes.url_keeps_name``) goes in a zip always."""
        odd = [f for f in files if not url_keeps_name(f.target.path)]
        small = [f for f in files if f.size > 0]
        if len(small) < self.min_files or sum(f.size for f in small) > self.max_mean_size * len(
            small
        ):
            chosen, rest = odd, [f for f in files if url_keeps_name(f.target.path)]
        else:
            chosen = [f for f in files if f.size > 0 or f in odd]
            rest = [f for f in files if f.size == 0 and f not in odd]
        zips: list[list[LocalEntry]] = [[]]
        size = 0
        for f in chosen:
            if zips[-1] and size + f.size > self.max_bytes:
                zips.append([])
                size = 0
            zips[-1].append(f)
            size += f.size
        return ([z for z in zips if z], rest)


NO_ZIPS = ZipRule(min_files=1 << 62)


@dataclass(frozen=True, slots=True)
class ResourceUpload:
    """Every file to send into one resource: ``zips`` (each unpacked by the server) then
    ``files`` one by one; ``replace`` holds the keys sent with ``overwrite=true``."""

    target: Target  # the first file's: owner, scan type and resource of them all
    files: tuple[LocalEntry, ...]
    replace: frozenset[str] = frozenset()
    zips: tuple[tuple[LocalEntry, ...], ...] = ()

    @property
    def all_files(self) -> tuple[LocalEntry, ...]:
        return (*(f for z in self.zips for f in z), *self.files)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.all_files)


@dataclass(frozen=True, slots=True)
class Conflict:
    entry: LocalEntry
    listed: Listed


@dataclass(frozen=True, slots=True)
class PushPlan:
    uploads: tuple[ResourceUpload, ...]
    skipped: tuple[LocalEntry, ...]
    conflicts: tuple[Conflict, ...]
    by_size_only: int = 0  # skips decided without a server digest
    files: int = field(init=False)

    def __post_init__(self) -> None:
        sent = sum(len(u.all_files) for u in self.uploads)
        object.__setattr__(self, "files", sent + len(self.skipped) + len(self.conflicts))


def listed_key(f: RemoteFile) -> str:
    """A listed file's identity in the shape of ``Target.key`` (labels, not IDs)."""
    subject = f.subject if f.level is not Level.PROJECT else ""
    session = f.experiment if f.level not in (Level.PROJECT, Level.SUBJECT) else ""
    scan = f.container if session and f.level is not Level.EXPERIMENT else ""
    return "/".join((f.level.value, subject, session, scan, f.resource, f.path))


def same(entry: LocalEntry, listed: Listed) -> bool:
    """Whether the catalog already holds this content (size, and MD5 where listed; an entry
    not hashed yet is never taken for the listed content)."""
    if listed.size is not None and listed.size != entry.size:
        return False
    return listed.digest is None or listed.digest == entry.md5


def plan(
    entries: Iterable[LocalEntry],
    catalog: Mapping[str, Listed],
    *,
    overwrite: bool,
    zips: ZipRule = NO_ZIPS,
) -> PushPlan:
    """Skip what is there, send what is not (small new files of a resource as ``zips``), and
    either replace or report what differs."""
    groups: dict[tuple[object, ...], list[LocalEntry]] = {}
    replace: set[str] = set()
    skipped: list[LocalEntry] = []
    conflicts: list[Conflict] = []
    by_size = 0
    for entry in sorted(entries, key=lambda e: e.target.key):
        listed = catalog.get(entry.target.key)
        if listed is not None and same(entry, listed):
            skipped.append(entry)
            by_size += listed.digest is None
            continue
        if listed is not None and not overwrite:
            conflicts.append(Conflict(entry, listed))
            continue
        if listed is not None:
            replace.add(entry.target.key)
        t = entry.target
        groups.setdefault((t.owner, t.resource), []).append(entry)
    uploads = []
    for files in groups.values():
        keys = frozenset(f.target.key for f in files) & replace
        batches, single = zips.batches([f for f in files if f.target.key not in keys])
        single += [f for f in files if f.target.key in keys]
        uploads.append(ResourceUpload(files[0].target, tuple(single), keys,
                                      tuple(tuple(b) for b in batches)))  # fmt: skip
    return PushPlan(tuple(uploads), tuple(skipped), tuple(conflicts), by_size)
