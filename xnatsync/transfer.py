"""One file: stream it, hash while streaming, write to a unique temp name, verify, rename.

Invariants:
* Bytes land only in a temp beside the target named by the run (``temps.TempNames``:
  ``.{name}.{run}.{random}.xnatsync-part``), opened with O_CREAT|O_EXCL|O_NOFOLLOW, so a
  planted symlink cannot redirect the write, two runs never share a temp file, and the next
  run can tell a dead run's temps from a live one's.
* Every filesystem call (checking the place, making folders, creating, writing, renaming) runs
  in a worker thread: file creation can cost a millisecond, and the loop must keep streaming.
* The final name appears only by ``os.replace`` after size and MD5 match the listing. A failure
  at any point removes the temp file; the final name is never partial.
* Hashing and writing run in worker threads (hashlib releases the GIL), a block at a time, so the
  event loop keeps reading the network; a small file costs one thread hop in all.

OS errors are converted by ``localfs.os_error``: ``LocalDiskError`` (fatal) or
``LocalFileError`` (this file only).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc

from xnatsync.errors import BadResponseError, IntegrityError, first_error
from xnatsync.localfs import fsync_dir, os_error
from xnatsync.model import RemoteFile
from xnatsync.temps import TempNames

CHUNK = 256 * 1024
BLOCK = 1 << 20
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC  # a new file only


class Body(Protocol):
    """A response body being received."""

    @property
    def content_length(self) -> int | None: ...

    @property
    def content_type(self) -> str: ...

    def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]: ...


class Source(Protocol):
    """Where file bytes come from (the XNAT client, or a fake in tests)."""

    def download(self, uri: str) -> AbstractAsyncContextManager[Body]: ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """A file verified at its final name."""

    size: int
    md5: str
    mtime_ns: int


class FileSink:
    """The temp file being written, its running MD5, and the blocks not yet written.

    Nothing touches the disk until the first write, which runs in a worker thread: checking
    the place, making its folder and creating the temp file cost a millisecond or more each
    on some filesystems, which must not stall the event loop once per file.
    """

    def __init__(self, place: Callable[[], Path], temps: TempNames) -> None:
        self._place = place
        self._temps = temps
        self.final: Path | None = None
        self.temp: Path | None = None
        self.fd: int | None = None
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.tail: list[bytes] = []

    def _open(self) -> int:
        if self.fd is None:
            final = self._place()
            self.temp, self.fd = create_temp(final, self._temps)
            self.final = final
        return self.fd

    def write(self, blocks: list[bytes]) -> None:
        """Hash and write blocks (runs in a worker thread)."""
        fd = self._open()
        try:
            for block in blocks:
                self.md5.update(block)
                write_all(fd, block)
                self.size += len(block)
        except OSError as exc:
            raise os_error(exc, self.temp or "") from exc

    def finish(self, remote: RemoteFile, content_type: str, fsync: bool) -> Fetched:
        """Write the tail, verify, and move into place (runs in a worker thread)."""
        self.write(self.tail)
        md5 = self.md5.hexdigest()
        check_content(remote, self.size, md5, content_type)
        fd, temp, final = self._open(), self.temp, self.final
        assert temp is not None
        assert final is not None
        self.fd = None  # commit closes it, whatever happens
        try:
            mtime_ns = commit(fd, temp, final, fsync=fsync)
            self.temp = None
            if fsync:
                fsync_dir(final.parent)
        except OSError as exc:
            raise os_error(exc, final) from exc
        return Fetched(self.size, md5, mtime_ns)

    def discard(self) -> None:
        """Close and remove the temp file, if there is one; safe to call twice."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.temp is not None:
            with suppress(FileNotFoundError):
                os.unlink(self.temp)
            self.temp = None


def write_whole(
    data: bytes | memoryview, remote: RemoteFile, final: Path, fsync: bool, temps: TempNames
) -> Fetched:
    """A file whose bytes are all at hand (a zip member): checked against the catalog before
    anything is written (unlike it, nothing is), then a temp beside ``final``, one write, and
    the rename. Blocking. The caller syncs the folder when ``fsync``."""
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    check_content(remote, len(data), md5, "")
    temp, fd = create_temp(final, temps)
    try:
        mtime_ns = commit(fd, temp, final, fsync=fsync, data=data)
    except OSError as exc:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise os_error(exc, final) from exc
    return Fetched(len(data), md5, mtime_ns)


def create_temp(final: Path, temps: TempNames) -> tuple[Path, int]:
    """A new temp beside ``final`` (its folder made for a folder's first file): its path and a
    descriptor open for writing. Blocking; an OSError comes back as ours."""
    temp = temps.beside(final)
    try:
        try:
            return temp, os.open(temp, CREATE, 0o644)
        except FileNotFoundError:  # first file of its folder
            final.parent.mkdir(parents=True, exist_ok=True)
            return temp, os.open(temp, CREATE, 0o644)
    except OSError as exc:
        raise os_error(exc, temp) from exc


def commit(fd: int, temp: Path, final: Path, *, fsync: bool, data: bytes | memoryview = b"") -> int:
    """Write ``data`` (what is left of the file), sync it with ``fsync``, close ``fd`` (always)
    and rename ``temp`` onto ``final``; return the mtime, which the rename keeps (``fstat``
    needs no path walk). Blocking; OSError as raised."""
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
        mtime_ns = os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
    os.replace(temp, final)
    return mtime_ns


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written (a write may take only part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def check_content(remote: RemoteFile, size: int, md5: str, content_type: str) -> None:
    """Compare what arrived with what the listing promised."""
    if remote.size is not None and size != remote.size:
        raise IntegrityError(
            f"{remote.path}: received {size} bytes, the listing says {remote.size}"
        )
    if remote.digest is not None and md5 != remote.digest:
        raise IntegrityError(f"{remote.path}: MD5 {md5} differs from the listed digest")
    looks_html = content_type.startswith("text/html")
    if remote.digest is None and looks_html and not remote.path.lower().endswith((".html", ".htm")):
        raise BadResponseError(f"{remote.path}: the server sent an HTML page instead of the file")


async def fetch(
    source: Source,
    remote: RemoteFile,
    final: Path | Callable[[], Path],
    *,
    fsync: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    limiter: anyio.CapacityLimiter | None = None,
    temps: TempNames | None = None,
) -> Fetched:
    """Download ``remote`` to ``final``; return what was verified there, or raise.

    ``final`` is the target path, or a function returning it after checking that it lies
    inside DEST (``localfs.resolve_under``); the function runs in a worker thread, just before
    the first byte is written. ``temps`` names the temp file (by default after this process).
    """
    temps = temps or TempNames(f"pid{os.getpid()}")
    sink = FileSink(final if callable(final) else lambda: final, temps)
    try:
        async with source.download(remote.uri) as body:
            announced = body.content_length
            if announced is not None and remote.size is not None and announced != remote.size:
                raise IntegrityError(
                    f"{remote.path}: the server announces {announced} bytes, "
                    f"the listing says {remote.size}"
                )
            await pump(body.chunks(CHUNK), sink, progress, limiter)
            content_type = body.content_type
        return await anyio.to_thread.run_sync(
            sink.finish, remote, content_type, fsync, limiter=limiter
        )
    except BaseException:
        sink.discard()
        raise


class Writer(Protocol):
    tail: list[bytes]

    def write(self, blocks: list[bytes]) -> None: ...


async def pump(
    chunks: AsyncIterator[bytes],
    sink: Writer,
    progress: Callable[[int], None],
    limiter: anyio.CapacityLimiter | None,
) -> None:
    """Receive the body; full blocks go to a writer thread while the next block arrives."""
    blocks, eof = await _read_block(chunks, progress)
    if not eof:
        send, recv = anyio.create_memory_object_stream[list[bytes]](1)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_drain, recv, sink, limiter)
                async with send:
                    while not eof:
                        await send.send(blocks)
                        blocks, eof = await _read_block(chunks, progress)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
    sink.tail = blocks


async def _read_block(
    chunks: AsyncIterator[bytes], progress: Callable[[int], None]
) -> tuple[list[bytes], bool]:
    blocks: list[bytes] = []
    buffered = 0
    while buffered < BLOCK:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return blocks, True
        blocks.append(chunk)
        buffered += len(chunk)
        progress(len(chunk))
    return blocks, False


async def _drain(
    recv: anyio.abc.ObjectReceiveStream[list[bytes]],
    sink: Writer,
    limiter: anyio.CapacityLimiter | None,
) -> None:
    async with recv:
        async for blocks in recv:
            await anyio.to_thread.run_sync(sink.write, blocks, limiter=limiter)
