"""Find the DICOM files under one or more sources, reading headers only, in worker threads.

``discover(sources)`` is an async context manager; its value is a stream (an async iterator)
of ``Found`` results — ``Instance``, ``Skipped`` or ``Unreadable`` — in the order they
complete, not in path order (``studies`` sorts).

Invariants:
* Bounded: one walker lists directories in batches of ``BATCH`` entries (each batch in a
  worker thread) into a stream of ``buffer`` paths; ``readers`` tasks read headers
  (``headers.read_found``) in worker threads under one ``CapacityLimiter``; results wait in a
  stream of ``buffer``. Memory is flat in the number of files: nothing is kept per file
  beyond the results not yet consumed, and the walk holds only the directories still to visit.
* Symlinks (to files or folders, a source included) are ``Skipped`` unless
  ``follow_symlinks``; when followed, a folder already visited (same device and inode) is
  skipped, so a link loop ends.
* A source that does not exist is a ``UsageError`` naming it, raised on entry before any
  result; an unreadable folder is an ``Unreadable`` result and the walk goes on.
* Leaving the context early cancels the walk and the readers; every task has this owner. An
  exception raised by the caller inside the context comes out as itself, not in an
  ``ExceptionGroup``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from xnatsync.dicom.headers import read_found
from xnatsync.dicom.instance import Found, Skipped, Unreadable
from xnatsync.errors import UsageError

BATCH = 512  # directory entries listed per worker-thread call
READERS = 8  # header reads in flight
BUFFER = 256  # paths waiting for a reader, and results waiting for the consumer


@asynccontextmanager
async def discover(
    sources: Sequence[Path],
    *,
    follow_symlinks: bool = False,
    readers: int = READERS,
    buffer: int = BUFFER,
) -> AsyncIterator[ObjectReceiveStream[Found]]:
    """Walk ``sources`` (files or folders); yield a stream of what each file is."""
    if readers < 1 or buffer < 0:
        raise UsageError(
            f"readers must be at least 1 and buffer not negative ({readers}, {buffer})"
        )
    await anyio.to_thread.run_sync(check_sources, list(sources))
    paths_in, paths_out = anyio.create_memory_object_stream[Path](buffer)
    results_in, results_out = anyio.create_memory_object_stream[Found](buffer)
    limiter = anyio.CapacityLimiter(readers)
    walk = _Walk(follow_symlinks=follow_symlinks)
    failed: Exception | None = None
    async with anyio.create_task_group() as group, results_out:
        group.start_soon(_walk_all, walk, list(sources), paths_in, results_in.clone())
        for _ in range(readers):
            group.start_soon(
                _read_all, paths_out.clone(), results_in.clone(), limiter, follow_symlinks
            )
        await paths_out.aclose()
        await results_in.aclose()
        try:
            yield results_out
        except Exception as exc:  # the caller's own error: raised as it is once the tasks stop,
            failed = exc  # not wrapped in the task group's ExceptionGroup
        finally:
            group.cancel_scope.cancel()
    if failed is not None:
        raise failed


def check_sources(sources: list[Path]) -> None:
    """``UsageError`` naming the first source that is not there or cannot be read."""
    if not sources:
        raise UsageError("no source given: name at least one file or folder of DICOM")
    for source in sources:
        try:
            source.lstat()
        except FileNotFoundError:
            raise UsageError(f"source not found: {source}") from None
        except OSError as exc:
            raise UsageError(f"source cannot be read: {source} ({exc.strerror})") from None


@dataclass
class _Walk:
    """The walk's state: folders still to list, and (when following links) folders seen."""

    follow_symlinks: bool
    seen: set[tuple[int, int]] = field(default_factory=set)


async def _walk_all(
    walk: _Walk,
    sources: list[Path],
    paths: ObjectSendStream[Path],
    results: ObjectSendStream[Found],
) -> None:
    async with paths, results:
        pending: list[Path] = []  # folders already classified, still to list
        for source in sources:
            kind = await anyio.to_thread.run_sync(_kind, walk, source)
            if isinstance(kind, Skipped | Unreadable):
                await results.send(kind)
            elif kind == "file":
                await paths.send(source)
            else:
                pending.append(source)
                while pending:
                    await _list_folder(walk, pending.pop(), pending, paths, results)


async def _list_folder(
    walk: _Walk,
    folder: Path,
    pending: list[Path],
    paths: ObjectSendStream[Path],
    results: ObjectSendStream[Found],
) -> None:
    """List ``folder`` in batches; files go to the readers, sub-folders onto ``pending``."""
    try:
        entries = await anyio.to_thread.run_sync(_open_folder, folder)
    except OSError as exc:
        await results.send(Unreadable(folder, f"cannot list folder: {exc.strerror or exc}"))
        return
    subfolders: list[Path] = []
    with entries:
        while batch := await anyio.to_thread.run_sync(_next_batch, walk, folder, entries):
            for item in batch:
                if isinstance(item, Skipped | Unreadable):
                    await results.send(item)
                elif item[1] == "file":
                    await paths.send(item[0])
                else:
                    subfolders.append(item[0])
    pending.extend(sorted(subfolders, reverse=True))


def _open_folder(folder: Path) -> _Entries:
    return _Entries(os.scandir(folder))


class _Entries:
    """An open ``os.scandir`` iterator, advanced a batch at a time from worker threads."""

    def __init__(self, scan: Iterator[os.DirEntry[str]]) -> None:
        self.scan = scan

    def __enter__(self) -> _Entries:
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self.scan, "close", None)
        if close is not None:
            close()


_Item = tuple[Path, str] | Skipped | Unreadable


def _next_batch(walk: _Walk, folder: Path, entries: _Entries) -> list[_Item]:
    """Up to ``BATCH`` entries of the folder, each classified (blocking)."""
    batch: list[_Item] = []
    try:
        for entry in entries.scan:
            path = Path(entry.path)
            kind = _kind(walk, path, entry)
            batch.append(kind if isinstance(kind, Skipped | Unreadable) else (path, kind))
            if len(batch) >= BATCH:
                break
    except OSError as exc:
        batch.append(Unreadable(folder, f"cannot list folder: {exc.strerror or exc}"))
    return batch


def _kind(
    walk: _Walk, path: Path, entry: os.DirEntry[str] | None = None
) -> str | Skipped | Unreadable:
    """``"file"``, ``"folder"``, or why the path is not walked (blocking)."""
    try:
        info = entry.stat(follow_symlinks=False) if entry is not None else path.lstat()
        if stat.S_ISLNK(info.st_mode):
            if not walk.follow_symlinks:
                return Skipped(path, "symlink (not followed)")
            info = path.stat()
    except FileNotFoundError:
        return Unreadable(path, "vanished, or a symlink whose target is missing")
    except OSError as exc:
        return Unreadable(path, f"cannot stat: {exc.strerror or exc}")
    if stat.S_ISDIR(info.st_mode):
        key = (info.st_dev, info.st_ino)
        if key in walk.seen:
            return Skipped(path, "folder already visited (a symlink loop)")
        if walk.follow_symlinks:
            walk.seen.add(key)
        return "folder"
    if stat.S_ISREG(info.st_mode):
        return "file"
    return Skipped(path, "not a regular file")


async def _read_all(
    paths: ObjectReceiveStream[Path],
    results: ObjectSendStream[Found],
    limiter: anyio.CapacityLimiter,
    follow_symlinks: bool,
) -> None:
    read = partial(read_found, follow_symlinks=follow_symlinks)
    async with paths, results:
        async for path in paths:
            found = await anyio.to_thread.run_sync(read, path, limiter=limiter)
            await results.send(found)
