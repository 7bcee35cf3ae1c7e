"""Changes + layout + options → an inspectable, frozen ``Plan``. The scheduler only executes it.

Pure:

* ``build_plan(changes, layout, options)`` for one owner (an experiment with its scans,
  assessors and reconstructions; or a subject; or a project's own resources). The engine plans
  one owner at a time, so memory follows the largest experiment, not the archive.
* deletes are planned once, at the end of a run, by ``deletes.build_delete_plan``.

Invariants:

* Every change with a remote file ends in exactly one of downloads, verifies, moves, skips or
  errors. Per-file problems (unsafe names, collisions) are errors in the plan, never exceptions.
* Collisions are decided from the listing alone, so the verdict is the same on every run: all
  files whose paths are equal after NFC + casefold are errors (never "first one wins", which
  flip-flops between runs); so are a file and a directory with one name; so is a listed file
  whose path differs only in case from an unlisted local file (it would overwrite it on a
  case-insensitive filesystem).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from xnatsync.errors import UnsafePathError
from xnatsync.layout import Placer
from xnatsync.model import LocalFile, RemoteFile
from xnatsync.paths import fold, safe_relpath
from xnatsync.pull.batching import BatchPolicy, choose_batches, group_scans, resource_uri
from xnatsync.pull.diff import Change, ChangeKind

_FETCH = frozenset({ChangeKind.NEW, ChangeKind.CHANGED, ChangeKind.MISSING, ChangeKind.RETRY})


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What the caller allows. ``listing_complete``: every listing of the run succeeded."""

    delete: bool = False
    listing_complete: bool = False
    max_delete: int | None = None
    purge: bool = False
    run_id: int = 0
    batch: BatchPolicy | None = None  # None: every file is its own request
    adopt_by_size: bool = False  # a file on disk with the listed size but no listed MD5 is kept


@dataclass(frozen=True, slots=True)
class Download:
    """Fetch ``remote`` to ``relpath`` (temp → verify → rename), then journal it done."""

    remote: RemoteFile
    relpath: PurePosixPath
    kind: ChangeKind


@dataclass(frozen=True, slots=True)
class Batch:
    """Fetch every file of one resource as a zip (``resource``: its listed URI), verify each
    member as a ``Download`` would be, and fetch what the zip did not deliver file by file."""

    resource: str
    downloads: tuple[Download, ...]


@dataclass(frozen=True, slots=True)
class ScanZip:
    """Fetch whole scans of one session as one zip (``uri``: ``…/experiments/{E}/scans/{ids}``),
    verify each member as a ``Download`` would be, and fetch what the zip did not deliver file
    by file. ``parts`` fetch the same files per resource (zips and single downloads): what runs
    instead when the run does not take group zips (``batching.SessionGate``) or the server
    does not give them."""

    uri: str
    downloads: tuple[Download, ...]
    parts: tuple[Batch | Download, ...]


@dataclass(frozen=True, slots=True)
class Verify:
    """Re-hash the file at ``current``: if it matches, journal it done (moving it to ``relpath``
    if they differ); otherwise download it to ``relpath``."""

    remote: RemoteFile
    current: PurePosixPath
    relpath: PurePosixPath
    expected_md5: str | None
    expected_size: int | None


@dataclass(frozen=True, slots=True)
class Move:
    """Rename ``src`` to ``dst`` (content already verified), then journal ``dst`` done."""

    remote: RemoteFile
    local: LocalFile
    src: PurePosixPath
    dst: PurePosixPath


@dataclass(frozen=True, slots=True)
class Skip:
    """Up to date: nothing to do but mark it seen."""

    key: str
    relpath: PurePosixPath
    size: int | None


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``relpath``: move it to ``trash`` (relative to DEST), or unlink if ``trash`` is None;
    then journal it deleted."""

    key: str
    relpath: PurePosixPath
    size: int | None
    trash: PurePosixPath | None


Action = ScanZip | Batch | Download | Verify | Move | Delete
"""One unit of work for the scheduler (a ``Skip`` is no work, and never scheduled)."""


@dataclass(frozen=True, slots=True)
class PlanError:
    """A file the plan will not touch, and why (recorded as this file's failure)."""

    key: str
    relpath: str
    reason: str
    remote: RemoteFile | None = None


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """Counts and bytes; add summaries of per-owner plans for a run total."""

    downloads: int = 0
    download_bytes: int = 0
    unknown_size: int = 0
    batched: int = 0  # downloads fetched in zips (counted in ``downloads`` too)
    batches: int = 0  # zips: per resource, and of scan groups
    scan_zips: int = 0  # of them, zips of several scans (``ScanZip``)
    verifies: int = 0
    verify_bytes: int = 0
    moves: int = 0
    skips: int = 0
    skip_bytes: int = 0
    deletes: int = 0
    delete_bytes: int = 0
    errors: int = 0
    unlisted: int = 0
    unproven: int = 0

    def __add__(self, other: PlanSummary) -> PlanSummary:
        names = PlanSummary.__dataclass_fields__
        return PlanSummary(**{n: getattr(self, n) + getattr(other, n) for n in names})

    def as_dict(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in PlanSummary.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run will do for one owner (or, for deletes, at the end). Pure data."""

    downloads: tuple[Download, ...] = ()
    verifies: tuple[Verify, ...] = ()
    moves: tuple[Move, ...] = ()
    skips: tuple[Skip, ...] = ()
    deletes: tuple[Delete, ...] = ()
    errors: tuple[PlanError, ...] = ()
    unlisted: int = 0
    delete_refused: str = ""
    batches: tuple[Batch, ...] = ()
    unproven: int = 0  # files on disk of the listed size, fetched again for want of a digest
    scan_zips: tuple[ScanZip, ...] = ()

    def actions(self) -> tuple[Action, ...]:
        """What the scheduler runs, in order: zips first (they are the cheapest per file)."""
        return (*self.scan_zips, *self.batches, *self.downloads, *self.verifies, *self.moves,
                *self.deletes)  # fmt: skip

    def without_scan_zips(self) -> Plan:
        """The same plan with each scan group's parts (per-resource zips, single files) in
        place of its zip: what runs while a run takes no group zips (``SessionGate``)."""
        parts = [p for z in self.scan_zips for p in z.parts]
        return replace(
            self,
            scan_zips=(),
            batches=(*(p for p in parts if isinstance(p, Batch)), *self.batches),
            downloads=(*(p for p in parts if isinstance(p, Download)), *self.downloads),
        )

    def all_downloads(self) -> list[Download]:
        """Single downloads and the members of every batch and scan group."""
        return [
            *self.downloads,
            *(d for b in self.batches for d in b.downloads),
            *(d for z in self.scan_zips for d in z.downloads),
        ]

    def summary(self) -> PlanSummary:
        downloads = self.all_downloads()
        return PlanSummary(
            downloads=len(downloads),
            download_bytes=sum(d.remote.size or 0 for d in downloads),
            unknown_size=sum(1 for d in downloads if d.remote.size is None),
            batched=len(downloads) - len(self.downloads),
            batches=len(self.batches) + len(self.scan_zips),
            scan_zips=len(self.scan_zips),
            verifies=len(self.verifies),
            verify_bytes=sum(v.expected_size or 0 for v in self.verifies),
            moves=len(self.moves),
            skips=len(self.skips),
            skip_bytes=sum(s.size or 0 for s in self.skips),
            deletes=len(self.deletes),
            delete_bytes=sum(d.size or 0 for d in self.deletes),
            errors=len(self.errors),
            unlisted=self.unlisted,
            unproven=self.unproven,
        )


def build_plan(
    changes: Iterable[Change],
    layout: Placer,
    options: PlanOptions,
    on_disk: Mapping[str, int] | None = None,
) -> Plan:
    """Plan one owner's changes. Never raises for a per-file problem: it becomes an error.

    Per-owner plans never delete; with ``options.batch``, downloads of whole scans of small
    files become scan-group zips, and of whole resources zip batches (``batching``).
    ``on_disk`` gives the size of each regular file found at the target of a file to fetch
    (``NEW`` or ``RETRY``): one of the listed size
    is adopted, that is re-hashed and kept if its MD5 is the listed digest (``Verify``), rather
    than fetched; without a listed digest only if ``options.adopt_by_size``."""
    changes = list(changes)
    targets, errors = _place(changes, layout)
    errors.update(_collisions(changes, targets))
    adopt = _Adoption(on_disk or {}, options.adopt_by_size)
    actions = [
        adopt.act(c, targets[c.key])
        for c in changes
        if c.kind is not ChangeKind.ONLY_LOCAL and c.key not in errors
    ]
    downloads = [a for a in actions if isinstance(a, Download)]
    batches: list[Batch] = []
    scan_zips: list[ScanZip] = []
    if options.batch is not None:
        listed = [c.remote for c in changes if c.remote is not None]
        scan_groups, downloads = group_scans(downloads, listed, options.batch)
        for group in scan_groups:
            parts, singles = _batch(group.downloads, listed, options.batch)
            scan_zips.append(ScanZip(group.uri, group.downloads, (*parts, *singles)))
        batches, downloads = _batch(downloads, listed, options.batch)
    return Plan(
        downloads=tuple(downloads),
        batches=tuple(batches),
        scan_zips=tuple(scan_zips),
        verifies=tuple(a for a in actions if isinstance(a, Verify)),
        moves=tuple(a for a in actions if isinstance(a, Move)),
        skips=tuple(a for a in actions if isinstance(a, Skip)),
        errors=tuple(errors[k] for k in sorted(errors)),
        unlisted=sum(1 for c in changes if c.kind is ChangeKind.ONLY_LOCAL),
        unproven=adopt.unproven,
    )


def _batch(
    downloads: Sequence[Download], listed: Sequence[RemoteFile], policy: BatchPolicy
) -> tuple[list[Batch], list[Download]]:
    groups, singles = choose_batches(downloads, listed, policy)
    return [Batch(resource_uri(g[0].remote) or "", g) for g in groups], singles


ADOPTABLE = frozenset({ChangeKind.NEW, ChangeKind.RETRY})
"""Kinds whose target may already hold the file: no row (a lost journal, a copied tree), or a
row not yet ``done`` (a kill between a file's rename and its row)."""


class _Adoption:
    """Turns a fetch into a ``Verify`` where the target already holds a file of the listed size."""

    def __init__(self, on_disk: Mapping[str, int], by_size: bool) -> None:
        self.on_disk = on_disk
        self.by_size = by_size
        self.unproven = 0

    def act(self, change: Change, target: PurePosixPath) -> Download | Verify | Move | Skip:
        remote = change.remote
        if change.kind not in ADOPTABLE or not self.on_disk or remote is None:
            return _act(change, target)
        size = self.on_disk.get(str(target))
        if size is None or remote.size is None or size != remote.size:
            return _act(change, target)
        if remote.digest is None and not self.by_size:
            self.unproven += 1
            return _act(change, target)
        return Verify(remote, target, target, remote.digest, remote.size)


def _place(
    changes: Sequence[Change], layout: Placer
) -> tuple[dict[str, PurePosixPath], dict[str, PlanError]]:
    targets: dict[str, PurePosixPath] = {}
    errors: dict[str, PlanError] = {}
    for change in changes:
        remote = change.remote
        if remote is None:
            continue
        if change.kind is ChangeKind.CONFLICT:
            reason = "listed more than once (names differ only in Unicode normalisation)"
            errors[remote.key] = PlanError(remote.key, remote.path, reason, remote)
            continue
        try:
            target = targets[remote.key] = layout.relpath(remote)
            local = change.local
            if (
                local is not None
                and change.kind is not ChangeKind.NEW
                and (local.relpath != str(target))
            ):
                safe_relpath(local.relpath, f"journal row {remote.key}")
        except UnsafePathError as exc:
            errors[remote.key] = PlanError(remote.key, remote.path, str(exc), remote)
    return targets, errors


def _collisions(
    changes: Sequence[Change], targets: dict[str, PurePosixPath]
) -> dict[str, PlanError]:
    remotes = {c.remote.key: c.remote for c in changes if c.remote is not None}
    by_fold: dict[str, list[str]] = {}
    for key in sorted(targets):
        by_fold.setdefault(fold(str(targets[key])), []).append(key)
    clashes: dict[str, list[str]] = {}
    for keys in by_fold.values():
        for key in keys if len(keys) > 1 else ():
            clashes[key] = [str(targets[k]) for k in keys if k != key]
    _file_dir_clashes(targets, by_fold, clashes)
    _unlisted_clashes(changes, targets, clashes)
    return {
        key: PlanError(key, str(targets[key]), _clash_reason(others), remotes[key])
        for key, others in clashes.items()
    }


def _file_dir_clashes(
    targets: dict[str, PurePosixPath], by_fold: dict[str, list[str]], clashes: dict[str, list[str]]
) -> None:
    for folded, keys in by_fold.items():
        # folding works per segment, so the folded parents are the prefixes of the folded path
        cut = folded.rfind("/")
        while cut > 0:
            for other in by_fold.get(folded[:cut], ()):
                for key in keys:
                    clashes.setdefault(key, []).append(str(targets[other]) + " (a file)")
                    clashes.setdefault(other, []).append(str(targets[key]) + " (below it)")
            cut = folded.rfind("/", 0, cut)


def _unlisted_clashes(
    changes: Sequence[Change], targets: dict[str, PurePosixPath], clashes: dict[str, list[str]]
) -> None:
    unlisted = {
        fold(c.local.relpath): c.local.relpath
        for c in changes
        if c.kind is ChangeKind.ONLY_LOCAL and c.local is not None
    }
    for key, target in targets.items():
        other = unlisted.get(fold(str(target)))
        if other is not None and other != str(target):
            clashes.setdefault(key, []).append(other + " (unlisted local file)")


def _clash_reason(others: list[str]) -> str:
    listed = ", ".join(sorted(set(others)))
    return f"path collides (case-insensitively or as file/folder) with {listed}"


def _act(change: Change, target: PurePosixPath) -> Download | Verify | Move | Skip:
    remote, local = change.remote, change.local
    assert remote is not None
    if change.kind in _FETCH or local is None:
        return Download(remote, target, change.kind)
    if change.kind is ChangeKind.SAME and local.relpath == str(target):
        return Skip(remote.key, target, local.size)  # the no-op path: no Path parsing
    current = PurePosixPath(local.relpath)
    if change.kind is ChangeKind.VERIFY:
        md5 = remote.digest or local.md5
        size = remote.size if remote.size is not None else local.size
        return Verify(remote, current, target, md5, size)
    if current != target:  # MOVED, or SAME when the diff was run without a layout
        return Move(remote, local, current, target)
    return Skip(remote.key, target, local.size)
