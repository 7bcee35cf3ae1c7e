"""A zip upload's body: planned from names and sizes, streamed with its exact length.

``ZipPlan(sources)`` places every member and computes ``total_size`` without reading a file;
``zip_stream(plan)`` yields exactly that many bytes, reading each file once, straight into the
chunk that goes to the socket (no copy between: at hundreds of MB a second, each copy costs
CPU the server on the same machine, or the next transfer, could use), a chunk at a time in
worker threads. The record layout is ``zipformat``'s (deflate-framed but uncompressed entries
with data descriptors, ZIP64 when needed), which both of XNAT's readers take: the import
service's ``ZipInputStream`` and a resource upload's ``extract=true``.

Invariants:
* The stream yields exactly ``total_size`` bytes or raises. Before the first byte every file's
  size is checked; a file whose size changed since it was planned (or that vanished) raises
  ``SourceChangedError`` naming it, then or while streaming — before more bytes than planned
  could go out, so the request is cut short and the server stores nothing. With
  ``check_mtime``, a file whose mtime moved while it was read raises the same at its end.
  Other read errors raise ``LocalFileError`` naming the file.
* With ``digests``, each member's MD5 of the bytes that went is recorded there by name.
* Memory is flat: one chunk being filled, one file open at a time; a chunk once yielded is
  never written again.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path

import anyio

from xnatsync import zipformat
from xnatsync.errors import LocalFileError, SourceChangedError

BLOCK = 16 * zipformat.MAX_BLOCK  # ~1 MiB, a whole number of deflate blocks


@dataclass(frozen=True, slots=True)
class Source:
    """One file to send as a member: where it is, its member name, and what was planned."""

    path: Path
    name: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Member:
    """One planned member: its source and its zip records' geometry."""

    source: Source
    entry: zipformat.Entry

    @property
    def name(self) -> str:
        return self.entry.name.decode()


class ZipPlan:
    """The zip of ``sources`` (in the given order), sized before any byte is read."""

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        limit: int = zipformat.LIMIT,
        count_limit: int = zipformat.COUNT_LIMIT,
    ) -> None:
        self.limits = {"limit": limit, "count_limit": count_limit}
        members: list[Member] = []
        offset = 0
        for source in sources:
            entry = zipformat.Entry(source.name.encode(), source.size, offset, source.mtime_ns,
                                    limit)  # fmt: skip
            members.append(Member(source, entry))
            offset += zipformat.entry_length(entry)
        self.members = tuple(members)
        self.cd_offset = offset
        self.cd_size = sum(len(zipformat.central_header(m.entry, 0)) for m in members)
        end = zipformat.end_length(len(members), offset, self.cd_size, **self.limits)
        self.total_size = offset + self.cd_size + end


async def zip_stream(
    plan: ZipPlan,
    *,
    block: int = BLOCK,
    digests: dict[str, str] | None = None,
    check_mtime: bool = False,
) -> AsyncIterator[memoryview]:
    """Yield the zip of ``plan``: exactly ``plan.total_size`` bytes, in chunks of about
    ``block`` (whole deflate blocks of file data, with the records between them)."""
    blocks = max(1, block // zipformat.MAX_BLOCK)
    await anyio.to_thread.run_sync(_check_sizes, plan.members)
    writer = _Writer(plan, digests=digests, check_mtime=check_mtime)
    sent = 0
    try:
        while not writer.finished:
            chunk = _Chunk(blocks)
            await anyio.to_thread.run_sync(writer.fill, chunk)
            sent += chunk.length
            if sent > plan.total_size:  # a bug, never a file's doing: refuse to go on
                raise RuntimeError(f"zip of over {plan.total_size} bytes planned")
            yield chunk.done()
    finally:
        writer.close()
    if sent != plan.total_size:
        raise RuntimeError(f"zip of {sent} bytes planned as {plan.total_size}")


class _Chunk:
    """One chunk of the stream, filled in place: file data is read straight into it behind
    its block headers, so no byte is copied between the read and the socket. Each chunk is a
    fresh buffer, never reused: a transport may keep a chunk it could not send at once."""

    def __init__(self, blocks: int) -> None:
        self.buffer = bytearray(blocks * (zipformat.MAX_BLOCK + zipformat.BLOCK_HEADER))
        self.view = memoryview(self.buffer)
        self.length = 0

    def free(self) -> int:
        return len(self.buffer) - self.length

    def put(self, record: bytes) -> bool:
        """Append ``record`` if it fits (or if the chunk is empty: it grows for a record
        longer than itself); False, nothing written, if not."""
        if len(record) > self.free():
            if self.length:
                return False
            self.buffer = bytearray(record)
            self.view = memoryview(self.buffer)
            self.length = len(record)
            return True
        self.view[self.length : self.length + len(record)] = record
        self.length += len(record)
        return True

    def done(self) -> memoryview:
        return self.view[: self.length]


class _Writer:
    """Writes the zip's records and members into chunks, one chunk per call from a worker
    thread (one thread hop a chunk, not a few a file: for many small files the hops, not the
    bytes, were the cost)."""

    def __init__(self, plan: ZipPlan, *, digests: dict[str, str] | None, check_mtime: bool) -> None:
        self.plan = plan
        self.digests = digests
        self.check_mtime = check_mtime
        self.records: deque[bytes] = deque()  # waiting for room, before what comes next
        self.members = iter(plan.members)
        self.current: tuple[Member, _Reader, BufferedReader] | None = None  # the member being read
        self.crcs: list[int] = []
        self.finished = False
        self.tail = False  # the central directory is queued

    def fill(self, chunk: _Chunk) -> None:
        """Fill ``chunk`` as far as whole records and deflate blocks go (blocking)."""
        while not self.finished:
            while self.records:
                if not chunk.put(self.records[0]):
                    return
                self.records.popleft()
            if self.current is not None:
                member, reader, handle = self.current
                if not reader.fill(handle, chunk):
                    return
                self._end(member, reader)
            elif not self._next():
                self.finished = True

    def _next(self) -> bool:
        """Queue the next member's local header and open its file; after the last, queue the
        central directory. False when nothing is left."""
        member = next(self.members, None)
        if member is not None:
            handle = _open(member.source)
            reader = _Reader(member.source, md5=self.digests is not None,
                             check_mtime=self.check_mtime)  # fmt: skip
            self.current = (member, reader, handle)
            self.records.append(zipformat.local_header(member.entry))
            return True
        if self.tail:
            return False
        self.tail = True
        plan = self.plan
        for m, crc in zip(plan.members, self.crcs, strict=True):
            self.records.append(zipformat.central_header(m.entry, crc))
        self.records.append(
            zipformat.end_records(len(self.crcs), plan.cd_offset, plan.cd_size, **plan.limits)
        )
        return True

    def _end(self, member: Member, reader: _Reader) -> None:
        self.close()
        self.records.append(zipformat.descriptor(member.entry, reader.crc))
        self.crcs.append(reader.crc)
        if self.digests is not None and reader.md5 is not None:
            self.digests[member.name] = reader.md5.hexdigest()

    def close(self) -> None:
        if self.current is not None:
            self.current[2].close()
            self.current = None


class _Reader:
    """One member's file, read once into the stream's chunks: CRC (and MD5) as it goes,
    checked at its end."""

    def __init__(self, source: Source, *, md5: bool, check_mtime: bool) -> None:
        self.source = source
        self.remaining = source.size
        self.finished = False
        self.crc = 0
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.check_mtime = check_mtime

    def fill(self, handle: BufferedReader, chunk: _Chunk) -> bool:
        """Read whole deflate blocks of the file into ``chunk`` while they fit (blocking);
        False when the next one does not (the caller starts a new chunk). An empty file is one
        empty final block."""
        header = zipformat.BLOCK_HEADER
        while not self.finished:
            n = min(self.remaining, zipformat.MAX_BLOCK)
            if header + n > chunk.free():
                return False
            final = n == self.remaining
            start = chunk.length + header
            chunk.view[chunk.length : start] = zipformat.block_header(n, final=final)
            data = chunk.view[start : start + n]
            self._read_into(handle, data)
            chunk.length = start + n
            self.remaining -= n
            if final:
                self._check_end(handle)
                self.finished = True
        return True

    def _read_into(self, handle: BufferedReader, data: memoryview) -> None:
        path = self.source.path
        got = 0
        while got < len(data):
            try:
                n = handle.readinto(data[got:])
            except OSError as exc:
                raise LocalFileError(f"{path}: cannot be read ({exc.strerror})") from exc
            if not n:
                raise SourceChangedError(f"{path}: shrank since it was planned", path)
            got += n
        self.crc = zlib.crc32(data, self.crc)
        if self.md5 is not None:
            self.md5.update(data)

    def _check_end(self, handle: BufferedReader) -> None:
        path = self.source.path
        if handle.read(1):
            raise SourceChangedError(f"{path}: grew since it was planned", path)
        if self.check_mtime and os.fstat(handle.fileno()).st_mtime_ns != self.source.mtime_ns:
            raise SourceChangedError(f"{path}: changed while being read; not sent as that "
                                     "version", path)  # fmt: skip


def _open(source: Source) -> BufferedReader:
    try:
        handle = open(source.path, "rb")  # noqa: SIM115 — closed by _Reader.blocks
    except FileNotFoundError:
        raise SourceChangedError(f"{source.path}: vanished since it was planned",
                                 source.path) from None  # fmt: skip
    except OSError as exc:
        raise LocalFileError(f"{source.path}: cannot be read ({exc.strerror})") from exc
    return handle


def _check_sizes(members: Sequence[Member]) -> None:
    """Before the first byte: every file still has its planned size (blocking)."""
    for member in members:
        source = member.source
        try:
            size = os.stat(source.path).st_size
        except FileNotFoundError:
            raise SourceChangedError(f"{source.path}: vanished since it was planned",
                                     source.path) from None  # fmt: skip
        except OSError as exc:
            raise LocalFileError(f"{source.path}: cannot be read ({exc.strerror})") from exc
        if size != source.size:
            raise SourceChangedError(
                f"{source.path}: size changed since it was planned ({source.size} → {size} "
                "bytes); send it again later",
                source.path,
            )
