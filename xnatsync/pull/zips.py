"""One zip of a resource's files: spool it to disk, then extract and verify each member.

Invariants:

* The zip streams to a temp of the run in ``DEST/.xnatsync/tmp`` (``temps.TempNames``),
  created with O_EXCL|O_NOFOLLOW below a path checked for symlinks, and removed when the batch
  ends (a killed run's spool is removed by the sweep at the next start). A zip whose members
  add up to at most ``IN_MEMORY`` (a scan group's, a small resource's) is held in memory
  instead, and goes to disk only if the server sends more than that: no spool file to write,
  read back and remove, and no read call per member (at most ``IN_MEMORY`` a stream).
* A member is matched to a planned download by the name XNAT gives it,
  ``…/resources/{label}/files/{path}`` whatever precedes it; in a zip of several scans, where
  that tail repeats, by the scan folder before it too (``scans/{ID}-{type}/`` or
  ``scans/{ID}/``, xnat-api §4.2). A member name is never used to build a local path: the
  planned target is, so a hostile zip can write nowhere else.
* Each matched member is written as a single download is: a unique temp beside the target,
  size and MD5 checked against the catalog, then rename. A stored member of up to ``WHOLE``
  bytes (nearly every member: the client asks for stored zips) is read at once, from memory
  or with one ``pread``, its CRC-32 and MD5 taken before a byte is written, and written by one
  call (``transfer.write_whole``); any other goes through the sink of a single download
  (``transfer.FileSink``), streamed. A member that is missing, damaged (CRC, a bad local
  header) or unlike the catalog is returned as that file's error, having written nothing;
  the caller fetches those files one by one.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import anyio

from xnatsync.errors import BadResponseError, XnatSyncError
from xnatsync.localfs import fsync_dir, os_error, resolve_under
from xnatsync.model import Level, RemoteFile
from xnatsync.temps import TMP_DIR, TempNames
from xnatsync.transfer import (
    BLOCK,
    CHUNK,
    CREATE,
    Body,
    Fetched,
    FileSink,
    Source,
    pump,
    write_all,
    write_whole,
)

MISSING = BadResponseError("not in the server's zip")  # a member the zip did not hold
IN_MEMORY = 2 << 20  # a zip of members up to this size (and no bigger) is held in memory
WHOLE = 4 << 20  # a stored member up to this size is read, checked and written at once
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature; name and extra lengths (30 bytes)


class ZipSource(Source, Protocol):
    """A source that can also send every file of a resource as one zip (the XNAT client)."""

    def download_zip(self, resource: str) -> AbstractAsyncContextManager[Body]:
        """Every file of the resource at ``resource`` (a listed URI) as one zip."""
        ...


class Spool:
    """The zip being received: held in memory when ``expected`` (the members' total size) is
    at most ``IN_MEMORY`` and while it stays under that (chunks kept by ``hold``, on the event
    loop), otherwise at a name of the run's under ``DEST/.xnatsync/tmp`` (a ``transfer.Writer``:
    blocks written in a worker thread); before the first write to disk, in that thread, the
    path is checked for symlinks and its folder made."""

    def __init__(self, dest: Path, temps: TempNames, expected: int | None = None) -> None:
        self.dest = dest
        self.path = temps.beside(dest.joinpath(*TMP_DIR.parts, "batch.zip"), record=False)
        self.name = PurePosixPath(self.path.relative_to(dest).as_posix())
        self.fd: int | None = None
        self.tail: list[bytes] = []
        self.in_memory = expected is not None and expected <= IN_MEMORY
        self.held: list[bytes] = []
        self.held_size = 0

    def hold(self, chunk: bytes) -> bool:
        """Keep ``chunk`` in memory if it fits there: no I/O, so the event loop may call it;
        False (nothing kept) when the spool is on disk or the chunk would take it past
        ``IN_MEMORY``: then ``write`` it, in a worker thread."""
        if not self.in_memory or self.held_size + len(chunk) > IN_MEMORY:
            return False
        self.held.append(chunk)
        self.held_size += len(chunk)
        return True

    def write(self, blocks: list[bytes]) -> None:
        if self.in_memory:
            size = sum(len(b) for b in blocks)
            if self.held_size + size <= IN_MEMORY:
                self.held += blocks
                self.held_size += size
                return
            self.in_memory = False  # more than the members: spill to disk, and on from there
            blocks, self.held, self.held_size = [*self.held, *blocks], [], 0
        try:
            if self.fd is None:
                resolve_under(self.dest, self.name)  # UnsafePathError through a symlink
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.fd = os.open(self.path, CREATE, 0o600)
            for block in blocks:
                write_all(self.fd, block)
        except OSError as exc:
            raise os_error(exc, self.path) from exc

    def close(self) -> None:
        self.write(self.tail)
        self.tail = []
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def received(self) -> Path | bytes:
        """What ``close`` completed: the zip's bytes if held in memory, else its path."""
        if not self.in_memory:
            return self.path
        self.held = [b"".join(self.held)]  # one copy held, not the blocks and their join
        return self.held[0]

    def discard(self) -> None:
        """Close and remove what was received; the spool may be used again (a retry)."""
        self.tail = []
        self.held, self.held_size = [], 0
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        with suppress(FileNotFoundError):
            os.unlink(self.path)


async def fetch_zip(
    source: ZipSource,
    resource: str,
    spool: Spool,
    *,
    progress: Callable[[int], None] = lambda n: None,
    limiter: anyio.CapacityLimiter | None = None,
) -> None:
    """Receive the zip of ``resource`` into ``spool``; on any failure nothing is left.

    Chunks that fit in memory are kept on the event loop; from the first that does not (or
    from the start, for a spool on disk) blocks go to disk in a worker thread."""
    try:
        async with source.download_zip(resource) as body:
            chunks = body.chunks(CHUNK)
            async for chunk in chunks:
                progress(len(chunk))
                if not spool.hold(chunk):
                    await anyio.to_thread.run_sync(spool.write, [chunk], limiter=limiter)
                    break
            await pump(chunks, spool, progress, limiter)  # the rest, if it did not all fit
        if spool.in_memory:
            spool.close()  # nothing to write: the tail is held
        else:
            await anyio.to_thread.run_sync(spool.close, limiter=limiter)
    except BaseException:
        spool.discard()
        raise


@dataclass(frozen=True, slots=True)
class Member:
    """A planned download expected in the zip; ``place`` gives its checked final path."""

    remote: RemoteFile
    place: Callable[[], Path]


def member_name(remote: RemoteFile) -> str:
    """The tail of the name XNAT gives the file in a zip."""
    return f"resources/{remote.resource}/files/{remote.path}"


def extract(
    spool: Path | bytes, members: Sequence[Member], fsync: bool, temps: TempNames
) -> list[Fetched | XnatSyncError]:
    """Extract and verify every expected member of the zip at ``spool`` (or in it), then
    remove the spool file (blocking: a worker thread runs it, or the event loop for a small
    zip held in memory on a local disk, ``execute.Unpacking``).

    Returns, per member, what was verified at its final name or why it was not. A fatal error
    (disk full) is raised; an unreadable zip raises ``BadResponseError``.
    """
    wanted: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        wanted.setdefault(member_name(m.remote), []).append(i)
    scans = [m.remote.container if m.remote.level is Level.SCAN else None for m in members]
    results: list[Fetched | XnatSyncError] = [MISSING] * len(members)
    try:
        with _opened(spool) as (archive, read):
            found: dict[int, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                index = None if info.is_dir() else _match(info.filename, wanted, scans)
                if index is not None:
                    found.setdefault(index, info)
            finals = _place(members, found, results)
            temps.note({f.parent for f in finals.values()})  # one ledger append for the zip
            for index, final in finals.items():
                info, remote = found[index], members[index].remote
                results[index] = _extract_one(archive, read, info, remote, final, fsync, temps)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadResponseError(f"the server's zip is unreadable: {exc}") from exc
    finally:
        if not isinstance(spool, bytes):
            with suppress(FileNotFoundError):
                os.unlink(spool)
    if fsync:  # the renames of the files written, once a folder
        _sync_folders({finals[i].parent for i, r in enumerate(results) if isinstance(r, Fetched)})
    return results


def _sync_folders(folders: set[Path]) -> None:
    for folder in folders:
        try:
            fsync_dir(folder)
        except OSError as exc:
            raise os_error(exc, folder) from exc


def _match(name: str, wanted: dict[str, list[int]], scans: Sequence[str | None]) -> int | None:
    """The member whose expected tail is the longest suffix of ``name`` (at a "/"), and whose
    scan is the one the name's folder says, if it names one."""
    start = 0
    while (found := wanted.get(name[start:])) is None:
        cut = name.find("/", start)
        if cut < 0:
            return None
        start = cut + 1
    prefix = name[:start].split("/")  # [..., "scans", folder, ""] below a scan
    folder = prefix[-2] if len(prefix) >= 3 and prefix[-3] == "scans" else None
    if folder is None:
        return found[0] if len(found) == 1 else None
    exact = [i for i in found if scans[i] in (folder, folder.rsplit("-", 1)[0])]
    loose = [i for i in found if scans[i] is not None and folder.startswith(f"{scans[i]}-")]
    chosen = exact or loose
    return chosen[0] if len(chosen) == 1 else None


def _place(
    members: Sequence[Member],
    found: dict[int, zipfile.ZipInfo],
    results: list[Fetched | XnatSyncError],
) -> dict[int, Path]:
    """The checked final path of each member found in the zip, in zip order; a member whose
    place is refused (a symlink on the way) gets that error as its result."""
    finals: dict[int, Path] = {}
    for index in found:
        try:
            finals[index] = members[index].place()
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            results[index] = exc
    return finals


Read = Callable[[int, int], bytes | memoryview]  # (offset, size) of the spool


@contextmanager
def _opened(spool: Path | bytes) -> Iterator[tuple[zipfile.ZipFile, Read]]:
    """The zip, and a reader of byte ranges of it: slices of the bytes held in memory, or
    ``pread``s of the spool file."""
    if isinstance(spool, bytes):
        view = memoryview(spool)
        with zipfile.ZipFile(io.BytesIO(spool)) as archive:
            yield archive, lambda offset, size: view[offset : offset + size]
        return
    with open(spool, "rb") as file, zipfile.ZipFile(file) as archive:
        fd = file.fileno()
        yield archive, lambda offset, size: os.pread(fd, size, offset)


def _whole(read: Read, info: zipfile.ZipInfo) -> bytes | memoryview | None:
    """A stored member's bytes, CRC checked, read at once; None when it must be streamed
    (compressed, encrypted or over ``WHOLE``). ``zipfile.BadZipFile`` if damaged."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    if info.file_size > WHOLE or info.compress_size != info.file_size:
        return None
    header = read(info.header_offset, _LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise zipfile.BadZipFile("the zip is cut short")
    signature, name_size, extra_size = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    start = info.header_offset + _LOCAL_HEADER.size + name_size + extra_size
    data = read(start, info.file_size)
    if len(data) != info.file_size:
        raise zipfile.BadZipFile("the zip is cut short")
    if zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 for {info.filename!r}")
    return data


def _extract_one(
    archive: zipfile.ZipFile,
    read: Read,
    info: zipfile.ZipInfo,
    remote: RemoteFile,
    final: Path,
    fsync: bool,
    temps: TempNames,
) -> Fetched | XnatSyncError:
    try:
        data = _whole(read, info)
        if data is not None:
            return write_whole(data, remote, final, fsync, temps)
        return _stream_one(archive, info, remote, final, fsync, temps)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        return BadResponseError(f"{remote.path}: damaged in the server's zip ({exc})")
    except XnatSyncError as exc:
        if exc.fatal:
            raise
        return exc


def _stream_one(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    remote: RemoteFile,
    final: Path,
    fsync: bool,
    temps: TempNames,
) -> Fetched:
    sink = FileSink(lambda: final, temps)
    try:
        with archive.open(info) as source:
            while block := source.read(BLOCK):
                sink.write([block])
        return sink.finish(remote, "", fsync)
    finally:
        sink.discard()
