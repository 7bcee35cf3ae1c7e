"""Carries out pull's actions: download, zip batch, scan-group zip, verify, move, delete (a
scheduler ``Runner``).

Every transfer attempt goes through the engine's ``Attempts`` loop. Per-file failures become
``failed`` journal rows and ``FileFailed`` events and the run goes on; fatal errors propagate
and the scheduler cancels the run.

Journal ordering (restic's data-before-index): ``mark_done`` is called only after
``transfer.fetch`` returned, that is after the file was verified at its final name.

Threads: a zip of small files (a mean under ``LARGE_MEMBER``) held in memory, with at most
``INLINE_MEMBERS`` files, unpacks on the event loop when DEST is on a local disk and files are
not fsynced (``Unpacking.inline``). Unpacking small files is Python between short system
calls, and every call hands the GIL to whichever thread waits for it: in a worker thread the
unpacking and the event loop passed the GIL to and fro at each create, write and rename, and a
pull of 5,000 x 16 KiB files ran 18 % slower than with the same work done on the loop between
reads. The stall is bounded: at most ``IN_MEMORY`` bytes and ``INLINE_MEMBERS`` files (about
20 ms here), while the sockets' buffers keep receiving. Any other zip of small files unpacks
in a worker thread under ``unpack``: one at a time on a local disk (8 at once made 250,000
futex calls in that pull and ran 15 % slower than one), ``UNPACKERS_NETWORK`` on a network
filesystem, where each create and rename waits on the server (never on the loop there) and
those waits overlap. A zip of large files is mostly hashing and writing, which release the GIL
for long stretches: it takes ``disk``'s 8 like single downloads (unpacked one at a time,
2,000 x 512 KiB ran at 0.66 of R3t, against 0.96 with 8).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import anyio

from xnatsync.errors import RemoteError, XnatSyncError
from xnatsync.events import FileDeleted, FileDone, FileFailed, Notice, Reporter
from xnatsync.journal import Journal
from xnatsync.localfs import hash_file, os_error, resolve_under
from xnatsync.model import RemoteFile
from xnatsync.mounts import network_filesystem
from xnatsync.pull.plan import Action, Batch, Delete, Download, Move, PlanError, ScanZip, Verify
from xnatsync.pull.zips import MISSING, Member, Spool, ZipSource, extract, fetch_zip
from xnatsync.scheduler import Attempts
from xnatsync.temps import TempNames
from xnatsync.transfer import Fetched, fetch

UNPACKERS_LOCAL = 1  # zips unpacking at once in worker threads on a local disk
UNPACKERS_NETWORK = 8  # and on a network filesystem
LARGE_MEMBER = 256 * 1024  # zips of files this large on average unpack under ``disk``
INLINE_MEMBERS = 128  # at most this many files in a zip unpacked on the event loop


@dataclass(frozen=True, slots=True)
class Unpacking:
    """How zips of small files unpack into DEST: ``threads`` at once in worker threads, and
    whether one held in memory unpacks on the event loop instead (``inline``)."""

    threads: int
    inline: bool


def unpacking(dest: Path, table: str | None = None, *, fsync: bool = False) -> Unpacking:
    """How zips unpack into ``dest`` (blocking: reads the mount table unless given): on the
    event loop on a local disk unless every file is fsynced (each sync waits on the disk);
    in threads on a network filesystem."""
    if network_filesystem(dest, table) is not None:
        return Unpacking(UNPACKERS_NETWORK, inline=False)
    return Unpacking(UNPACKERS_LOCAL, inline=not fsync)


@dataclass(kw_only=True)
class Executor:
    """Carries out one pull action at a time; holds what every action needs."""

    source: ZipSource
    journal: Journal
    dest: Path
    reporter: Reporter
    attempts: Attempts
    temps: TempNames
    fsync: bool = False
    disk: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(8))
    unpack: anyio.CapacityLimiter = field(  # zips unpacking at once (``UNPACKERS_*``)
        default_factory=lambda: anyio.CapacityLimiter(UNPACKERS_LOCAL)
    )
    inline_unpack: bool = False  # small zips held in memory unpack on the loop (``Unpacking``)
    known_dirs: set[str] = field(default_factory=set)  # folders under DEST checked: no symlink
    zips_refused: bool = False  # the server answered a zip request as if it had no such thing
    scan_zips_refused: bool = False  # the same, for zips of several scans (then per resource)

    async def run(self, action: Action) -> None:
        try:
            match action:
                case ScanZip():
                    await self.scan_zip(action)
                    return
                case Batch():
                    await self.batch(action)
                    return
                case Download():
                    await self.download(action.remote, action.relpath)
                case Verify():
                    await self.verify(action)
                case Move():
                    await self.move(action)
                case Delete():
                    await self.delete(action)
        except XnatSyncError as exc:
            if exc.fatal or isinstance(action, Batch | ScanZip):
                raise
            remote = None if isinstance(action, Delete) else action.remote
            key = action.key if isinstance(action, Delete) else action.remote.key
            self.fail(key, str(action_relpath(action)), str(exc), remote)

    def fail(self, key: str, relpath: str, reason: str, remote: RemoteFile | None) -> None:
        """Record one file's failure (in the journal when it has a remote side) and report it."""
        if remote is not None:
            self.journal.mark_failed(remote, reason, relpath)
        self.reporter.emit(FileFailed(key, relpath, reason))

    def record(self, errors: tuple[PlanError, ...]) -> None:
        """A plan's per-file errors are failures of their files, recorded before any action."""
        for error in errors:
            self.fail(error.key, error.relpath, error.reason, error.remote)

    async def download(self, remote: RemoteFile, relpath: PurePosixPath) -> None:
        final = functools.partial(resolve_under, self.dest, relpath, self.known_dirs)
        self.journal.mark_in_progress(remote, str(relpath))

        def attempt(progress: Callable[[int], None]) -> Awaitable[Fetched]:
            fsync, disk = self.fsync, self.disk
            return fetch(self.source, remote, final, fsync=fsync, progress=progress,
                         limiter=disk, temps=self.temps)  # fmt: skip

        fetched = await self.attempts.run(remote.key, str(relpath), remote.size, attempt)
        self.done(remote, relpath, fetched, "downloaded")

    async def scan_zip(self, action: ScanZip) -> None:
        """One zip of whole scans; if the server gives none, per resource (``parts``); whatever
        it does not deliver intact, one by one."""
        if self.zips_refused or self.scan_zips_refused:
            results = None
        else:
            results = await self._zip(action.uri, action.downloads, scans=True)
        if results is None or self._all_missing(results):
            if results is not None:
                self.scan_zips_refused = True
                self.reporter.emit(
                    Notice(
                        f"the zip of {action.uri} held none of its listed files; "
                        "fetching scans per resource from now on"
                    )
                )
            for part in action.parts:
                await self.run(part)
            return
        await self._settle(action.uri, action.downloads, results)

    async def batch(self, action: Batch) -> None:
        """One zip for a resource's files; whatever it does not deliver intact, one by one."""
        results = None if self.zips_refused else await self._zip(action.resource, action.downloads)
        if results is not None and self._all_missing(results):
            # a zip without one listed file in it: this server names members otherwise,
            # and every further zip would be fetched for nothing
            self.zips_refused = True
            self.reporter.emit(Notice("this server's zips do not match; no more zips"))
        await self._settle(action.resource, action.downloads, results)

    @staticmethod
    def _all_missing(results: list[Fetched | XnatSyncError]) -> bool:
        return all(r is MISSING for r in results)

    async def _settle(
        self,
        uri: str,
        downloads: tuple[Download, ...],
        results: list[Fetched | XnatSyncError] | None,
    ) -> None:
        """Journal what the zip delivered; fetch the rest one by one (all of it: no zip)."""
        leftovers = list(downloads) if results is None else []
        for download, got in zip(downloads, results or (), strict=False):
            if isinstance(got, Fetched):
                self.done(download.remote, download.relpath, got, "downloaded")
            else:
                leftovers.append(download)
        if results is not None and leftovers:
            reason = next(str(r) for r in results if not isinstance(r, Fetched))
            self.reporter.emit(
                Notice(
                    f"{len(leftovers)} of {len(results)} files of {uri} did not "
                    f"arrive intact in its zip (first: {reason}); fetching them one by one"
                )
            )
        for download in leftovers:
            await self.run(download)

    async def _zip(
        self, uri: str, downloads: tuple[Download, ...], *, scans: bool = False
    ) -> list[Fetched | XnatSyncError] | None:
        """Fetch and extract the zip; None (after a notice) if it could not be had at all.

        The members' journal rows are written when the whole zip is extracted (one thread hop
        per zip, not one per member), ``done`` at once: no ``in_progress`` row first (a third
        fewer journal writes for files that come in zips; a file fetched alone after the zip
        gets one). A kill in between leaves verified files without a row, which the next run
        re-hashes (adopts) rather than fetches."""
        size = sum(d.remote.size or 0 for d in downloads)
        label = f"zip of {len(downloads)} files"
        place = functools.partial(resolve_under, self.dest, known_dirs=self.known_dirs)
        members = [Member(d.remote, functools.partial(place, rel=d.relpath)) for d in downloads]
        spool = Spool(self.dest, self.temps, expected=size)
        try:

            def attempt(progress: Callable[[int], None]) -> Awaitable[None]:
                return fetch_zip(self.source, uri, spool, progress=progress,
                                 limiter=self.disk)  # fmt: skip

            await self.attempts.run(uri, label, size, attempt)
            small = size < len(downloads) * LARGE_MEMBER  # unpacking them is GIL-bound
            received = spool.received()
            few = len(downloads) <= INLINE_MEMBERS
            if small and few and self.inline_unpack and isinstance(received, bytes):
                return extract(received, members, self.fsync, self.temps)
            return await anyio.to_thread.run_sync(
                extract, received, members, self.fsync, self.temps,
                limiter=self.unpack if small else self.disk,
            )  # fmt: skip
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            if isinstance(exc, RemoteError) and exc.status in (400, 404, 405, 406, 501):
                # this server does not zip (or not several scans at once): stop asking
                if scans:
                    self.scan_zips_refused = True
                else:
                    self.zips_refused = True
            fallback = "per resource" if scans else f"its {len(downloads)} files one by one"
            self.reporter.emit(
                Notice(f"could not fetch {uri} as a zip ({exc}); fetching {fallback}")
            )
            return None

    def done(self, remote: RemoteFile, relpath: PurePosixPath, got: Fetched, action: str) -> None:
        self.journal.mark_done(remote, str(relpath), got.size, got.mtime_ns, got.md5)
        self.reporter.emit(FileDone(remote.key, str(relpath), got.size, got.md5, action))

    async def verify(self, action: Verify) -> None:
        current = resolve_under(self.dest, action.current)
        size, md5, mtime_ns = await anyio.to_thread.run_sync(hash_file, current, limiter=self.disk)
        matches = (action.expected_md5 is None or md5 == action.expected_md5) and (
            action.expected_size is None or size == action.expected_size
        )
        if not matches:
            await self.download(action.remote, action.relpath)
            return
        if action.current != action.relpath:
            mtime_ns = self._rename(action.current, action.relpath)
        self.done(action.remote, action.relpath, Fetched(size, md5, mtime_ns), "verified")

    async def move(self, action: Move) -> None:
        local = action.local
        if local.md5 is None or local.size is None:
            await self.download(action.remote, action.dst)
            return
        mtime_ns = self._rename(action.src, action.dst)
        self.done(action.remote, action.dst, Fetched(local.size, local.md5, mtime_ns), "moved")

    def _rename(self, src: PurePosixPath, dst: PurePosixPath) -> int:
        source, target = resolve_under(self.dest, src), resolve_under(self.dest, dst)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            return os.stat(target, follow_symlinks=False).st_mtime_ns
        except OSError as exc:
            raise os_error(exc, target) from exc

    async def delete(self, action: Delete) -> None:
        path = resolve_under(self.dest, action.relpath)
        trashed: str | None = None
        try:
            if action.trash is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                self._rename(action.relpath, action.trash)
                trashed = str(action.trash)
        except OSError as exc:
            raise os_error(exc, path) from exc
        self.journal.mark_deleted(action.key)
        self.reporter.emit(FileDeleted(action.key, str(action.relpath), trashed))


def action_relpath(action: Download | Verify | Move | Delete) -> PurePosixPath:
    if isinstance(action, Move):
        return action.dst
    return action.relpath
