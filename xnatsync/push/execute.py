"""Carries out one resource's uploads: make its owner, send each file, then check them all.

Invariants:

* One resource, one writer: the files of a ``ResourceUpload`` go one after another.
* The owner (subject, session, scan) is created once per run, by labels, under a lock per
  owner: two resources of one new session never race to create it.
* A file's bytes are read from disk while they are sent, hashed as they go, and checked against
  what was planned (size, mtime, MD5) before the last block leaves: a file that changed while
  being read is not sent as that version (the request is cut short, so XNAT stores nothing).
* After a failed attempt (5xx, reset, timeout: the body may have arrived), the next attempt
  first looks at the resource: a file already there with the local size and MD5 is not sent
  again. A ``{"duplicates": …}`` answer is never counted as written.
* After the resource's uploads, one fresh listing checks each sent file (size, and MD5 where the
  server lists one); only then is it ``done`` in the journal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import anyio

from xnatsync import zipbody
from xnatsync.errors import IntegrityError, LocalFileError, SourceChangedError, XnatSyncError
from xnatsync.events import FileDone, FileFailed, Notice, Reporter
from xnatsync.journal import Journal
from xnatsync.localfs import hash_file, resolve_under
from xnatsync.model import Level, RemoteFile
from xnatsync.push.plan import Listed, LocalEntry, ResourceUpload, same
from xnatsync.push.tree import MEMBER_KINDS, NotPushedError, Target
from xnatsync.scheduler import Attempts
from xnatsync.xnat import parse, routes
from xnatsync.xnat.client import XnatClient

BLOCK = 1 << 20
ZIP_NAME = "xnatsync-upload.zip"  # the server unpacks it and keeps none of it (extract=true)
EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()
Owner = tuple[Level, str, str, str]  # ``Target.owner``: level and labels


def journal_file(project: str, entry: LocalEntry) -> RemoteFile:
    """The push journal's record of a file: its target by labels (``Target.key`` order)."""
    t = entry.target
    return RemoteFile(
        project=project, subject_id=t.subject, subject=t.subject, experiment_id=t.session,
        experiment=t.session, level=t.level, container=t.scan, container_type=t.scan_type,
        resource=t.resource, path=t.path, uri="", size=entry.size, digest=entry.md5,
    )  # fmt: skip


def owner_path(project: str, t: Target) -> str:
    kind = MEMBER_KINDS.get(t.level, "scans")
    return routes.owner_path(project, t.subject, t.session, t.scan, kind=kind)


@dataclass(kw_only=True)
class Uploader:
    """The push ``Runner``: holds what every resource upload needs."""

    client: XnatClient
    journal: Journal
    source: Path
    project: str
    session_type: str
    reporter: Reporter
    attempts: Attempts
    existing: set[Owner] = field(default_factory=set)  # owners the server listed
    session_types: dict[str, str] = field(default_factory=dict)  # label → type, from pull
    disk: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(8))
    known_dirs: set[str] = field(default_factory=set)  # folders checked: no symlink (one lstat)
    _locks: dict[Owner, anyio.Lock] = field(default_factory=dict)

    async def run(self, action: ResourceUpload) -> None:
        try:
            await self._make_owner(action.target)
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            for entry in action.all_files:
                self.fail(entry, f"cannot create its owner: {exc}")
            return
        sent: list[LocalEntry] = []
        single = list(action.files)
        for batch in action.zips:
            try:
                sent += await self._send_zip(action.target, batch)
            except SourceChangedError:
                single += batch  # one file moved: each goes alone, so only that one fails
            except XnatSyncError as exc:
                if exc.fatal:
                    raise
                for entry in batch:
                    self.fail(entry, f"in a zip that failed: {exc}")
        for entry in single:
            try:
                sent.append(await self._send(entry, replace=entry.target.key in action.replace))
            except XnatSyncError as exc:
                if exc.fatal:
                    raise
                self.fail(entry, str(exc))
        if sent:
            await self._check(action.target, sent)

    def fail(self, entry: LocalEntry, reason: str) -> None:
        self.journal.mark_failed(journal_file(self.project, entry), reason, entry.relpath)
        self.reporter.emit(FileFailed(entry.target.key, entry.relpath, reason))

    async def _make_owner(self, t: Target) -> None:
        """Create the subject, session and scan the resource hangs from, unless the server
        listed them (a resource is created by its first upload, xnat-api §4.4). Assessors and
        reconstructions are never created: the run found them on the server."""
        if t.level is Level.SUBJECT:
            await self._ensure((Level.SUBJECT, t.subject, "", ""),
                               routes.subject(self.project, t.subject))  # fmt: skip
        elif t.level in (Level.EXPERIMENT, Level.SCAN):
            kind = self.type_of(t.session)
            route = routes.session(self.project, t.subject, t.session, kind)
            await self._ensure((Level.EXPERIMENT, t.subject, t.session, ""), route)
        if t.level is Level.SCAN:
            scan_type = self.type_of(t.session).replace("SessionData", "ScanData")
            route = routes.scan(self.project, t.subject, t.session, t.scan, scan_type, t.scan_type)
            await self._ensure(t.owner, route)

    def type_of(self, session: str) -> str:
        """The type to create a session as: the pulled tree's own, else ``--xsi-type``."""
        kind = self.session_types.get(session, "")
        return kind if kind.endswith("SessionData") else self.session_type

    async def _ensure(self, owner: Owner, route: routes.Route) -> None:
        """PUT ``route`` once per run, one caller at a time per owner."""
        async with self._locks.setdefault(owner, anyio.Lock()):
            if owner not in self.existing:
                await self.client.put_object(route)
                self.existing.add(owner)

    async def _send(self, entry: LocalEntry, *, replace: bool) -> LocalEntry:
        """Send one file; the entry with the MD5 of the bytes that went (hashed as read)."""
        t = entry.target
        if not routes.url_keeps_name(t.path):  # only replacements of such names come here
            raise NotPushedError(
                f"{entry.relpath}: XNAT reads this name wrongly from a URL, so it travels only "
                "in a zip, and push does not replace files through zips; delete the server's "
                "copy first, then push again"
            )
        owner = owner_path(self.project, t)
        target = routes.resource_file(owner, t.resource, t.path, overwrite=replace)
        path = resolve_under(self.source, PurePosixPath(entry.relpath), self.known_dirs)
        tries = 0
        reads: list[Reading] = []

        def body(progress: Callable[[int], None]) -> AsyncIterator[bytes]:
            reads.append(Reading(path, entry))
            return reads[-1].blocks(progress, self.disk)

        async def attempt(progress: Callable[[int], None]) -> LocalEntry:
            nonlocal entry, tries
            tries += 1
            if tries > 1:
                entry = await self._hashed(entry, path)
                if await self._arrived(owner, entry):
                    return entry  # the failed attempt's body did arrive: not sent again
            answer = await self.client.upload(target, entry.size, lambda: body(progress))
            sent = replace_md5(entry, reads[-1].digest if reads else EMPTY_MD5)
            if "duplicates" in answer and not await self._arrived(owner, sent):
                raise IntegrityError(
                    f"{entry.relpath}: the server already has a different {t.path} in "
                    f"{t.resource} (not replaced; --overwrite replaces it)"
                )
            return sent

        return await self.attempts.run(t.key, entry.relpath, entry.size, attempt)

    async def _send_zip(self, t: Target, batch: tuple[LocalEntry, ...]) -> list[LocalEntry]:
        """Send ``batch`` as one zip the server unpacks into the resource; the entries with the
        MD5s of the bytes that went. A later attempt first looks at the resource and zips only
        the files not there yet (a failed request may have been applied)."""
        owner = owner_path(self.project, t)
        route = routes.resource_zip(owner, t.resource, ZIP_NAME)
        todo = list(batch)
        arrived: list[LocalEntry] = []
        tries = 0

        async def attempt(progress: Callable[[int], None]) -> None:
            nonlocal todo, tries
            tries += 1
            if tries > 1:
                todo = await self._not_arrived(owner, todo, arrived)
                if not todo:
                    return
            sources = []
            for e in todo:
                path = resolve_under(self.source, PurePosixPath(e.relpath), self.known_dirs)
                sources.append(zipbody.Source(path, e.target.path, e.size, e.mtime_ns))
            plan = zipbody.ZipPlan(sources)
            digests: dict[str, str] = {}

            async def body() -> AsyncIterator[memoryview]:
                digests.clear()
                async for chunk in zipbody.zip_stream(plan, digests=digests, check_mtime=True):
                    progress(len(chunk))
                    yield chunk

            await self.client.upload(route, plan.total_size, body)
            arrived.extend(replace_md5(e, digests[e.target.path]) for e in todo)
            todo = []

        size = sum(e.size for e in batch)
        label = f"{t.resource} ({len(batch)} files as a zip)"
        await self.attempts.run(f"{t.key}#zip", label, size, attempt)
        return arrived

    async def _not_arrived(
        self, owner: str, todo: list[LocalEntry], arrived: list[LocalEntry]
    ) -> list[LocalEntry]:
        """After a failed zip: the files the resource now holds (with the local size and MD5)
        join ``arrived``; the rest are sent again."""
        try:
            listed = await self._catalog(owner, todo[0].target.resource)
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            listed = {}
        left = []
        for entry in todo:
            got = listed.get(entry.target.path)
            if got is not None:
                path = resolve_under(self.source, PurePosixPath(entry.relpath), self.known_dirs)
                entry = await self._hashed(entry, path)
                if same(entry, got):
                    arrived.append(entry)
                    continue
            left.append(entry)
        return left

    async def _hashed(self, entry: LocalEntry, path: Path) -> LocalEntry:
        """The entry with its MD5, hashing the file if it was not hashed before planning."""
        if entry.md5 is not None:
            return entry
        size, md5, mtime_ns = await anyio.to_thread.run_sync(hash_file, path, limiter=self.disk)
        if (size, mtime_ns) != (entry.size, entry.mtime_ns):
            raise LocalFileError(f"{entry.relpath} changed since it was planned; not sent now")
        return replace_md5(entry, md5)

    async def _arrived(self, owner: str, entry: LocalEntry) -> bool:
        """Whether the resource already holds this file; a listing that fails says no (the
        send that follows is answered ``duplicates`` if the file is there after all)."""
        try:
            listed = await self._catalog(owner, entry.target.resource)
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            return False
        got = listed.get(entry.target.path)
        return got is not None and same(entry, got)

    async def _catalog(self, owner: str, resource: str) -> dict[str, Listed]:
        rows = await self.client.list_rows(routes.resource_files(owner, resource))
        return {p: Listed(s, d) for p, (s, d) in parse.resource_catalog(rows).items()}

    async def _check(self, t: Target, sent: list[LocalEntry]) -> None:
        """One fresh listing: each sent file there with its size (and MD5 where listed)."""
        try:
            listed = await self._catalog(owner_path(self.project, t), t.resource)
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            for entry in sent:  # unchecked is not done: the next run looks again
                self.fail(entry, f"sent, but {t.resource} could not be listed to check it: {exc}")
            return
        by_size = 0
        for entry in sent:
            got = listed.get(entry.target.path)
            if got is None:
                self.fail(entry, "sent, but not in the resource's catalog afterwards")
            elif not same(entry, got):
                self.fail(entry, f"sent, but the catalog lists {got.size} bytes, MD5 {got.digest}")
            else:
                by_size += got.digest is None
                md5 = entry.md5 or ""  # set by the send
                record = journal_file(self.project, entry)
                self.journal.mark_done(record, entry.relpath, entry.size, entry.mtime_ns, md5)
                self.reporter.emit(
                    FileDone(entry.target.key, entry.relpath, entry.size, md5, "uploaded")
                )
        if by_size:
            self.reporter.emit(Notice(
                f"{by_size} files of {t.resource} checked by size only: the server lists no MD5"
            ))  # fmt: skip


class Reading:
    """One send of a file's bytes: opened, read and hashed a block per worker-thread hop; when
    the last planned byte is read, in the same hop, the file must still be the one planned
    (size and mtime, and MD5 where it was hashed before), else ``LocalFileError`` and the
    request is cut short, so XNAT stores nothing of that version."""

    def __init__(self, path: Path, entry: LocalEntry) -> None:
        self.path = path
        self.entry = entry
        self.fd: int | None = None
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.read = 0
        self.digest: str | None = None

    async def blocks(
        self, progress: Callable[[int], None], limiter: anyio.CapacityLimiter
    ) -> AsyncIterator[bytes]:
        try:
            while self.read < self.entry.size:
                block = await anyio.to_thread.run_sync(self._next, limiter=limiter)
                progress(len(block))
                yield block
        finally:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    def _next(self) -> bytes:
        entry = self.entry
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise LocalFileError(f"cannot read {entry.relpath}: {exc.strerror or exc}") from exc
            self._check("changed since it was planned; not sent now")
        try:
            block = os.read(self.fd, min(BLOCK, entry.size - self.read))
        except OSError as exc:
            raise LocalFileError(f"cannot read {entry.relpath}: {exc.strerror or exc}") from exc
        if not block:
            raise LocalFileError(f"{entry.relpath} shrank while being read; not sent")
        self.md5.update(block)
        self.read += len(block)
        if self.read == entry.size:
            self.digest = self.md5.hexdigest()
            self._check("changed while being read; not sent as that version")
        return block

    def _check(self, what: str) -> None:
        assert self.fd is not None
        st = os.fstat(self.fd)
        entry = self.entry
        moved = (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns)
        if moved or (None not in (self.digest, entry.md5) and self.digest != entry.md5):
            raise LocalFileError(f"{entry.relpath} {what}")


def replace_md5(entry: LocalEntry, md5: str | None) -> LocalEntry:
    return dataclasses.replace(entry, md5=md5)
