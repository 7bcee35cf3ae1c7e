"""A zip upload's body: planned from names and sizes, streamed with its exact length.

``ZipPlan(sources)`` places every member and computes ``total_size`` without reading a file;
``zip_stream(plan)`` yields exactly that many bytes, reading each file once, a block at a time,
in worker threads. The record layout is ``zipformat``'s (deflate-framed but uncompressed
entries with data descriptors, ZIP64 when needed), which both of XNAT's readers take: the
import service's ``ZipInputStream`` and a resource upload's ``extract=true``.

Invariants:
* The stream yields exactly ``total_size`` bytes or raises. Before the first byte every file's
  size is checked; a file whose size changed since it was planned (or that vanished) raises
  ``SourceChangedError`` naming it, then or while streaming — before more bytes than planned
  could go out, so the request is cut short and the server stores nothing. With
  ``check_mtime``, a file whose mtime moved while it was read raises the same at its end.
  Other read errors raise ``LocalFileError`` naming the file.
* With ``digests``, each member's MD5 of the bytes that went is recorded there by name.
* Memory is flat: one block per open file, one file open at a time.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
) -> AsyncIterator[bytes]:
    """Yield the zip of ``plan``: exactly ``plan.total_size`` bytes, in chunks of ~``block``."""
    read_size = max(1, block // zipformat.MAX_BLOCK) * zipformat.MAX_BLOCK
    await anyio.to_thread.run_sync(_check_sizes, plan.members)
    crcs: list[int] = []
    out = bytearray()
    sent = 0
    for member in plan.members:
        out += zipformat.local_header(member.entry)
        reader = _Reader(member.source, md5=digests is not None, check_mtime=check_mtime)
        async for data, last in reader.blocks(read_size):
            out += _framed(data, last=last)
            if len(out) >= block:
                sent += len(out)
                yield bytes(out)
                out.clear()
        out += zipformat.descriptor(member.entry, reader.crc)
        crcs.append(reader.crc)
        if digests is not None and reader.md5 is not None:
            digests[member.name] = reader.md5.hexdigest()
    for member, crc in zip(plan.members, crcs, strict=True):
        out += zipformat.central_header(member.entry, crc)
        if len(out) >= block:
            sent += len(out)
            yield bytes(out)
            out.clear()
    out += zipformat.end_records(len(crcs), plan.cd_offset, plan.cd_size, **plan.limits)
    if sent + len(out) != plan.total_size:  # a bug, never a file's doing: refuse to finish
        raise RuntimeError(f"zip of {sent + len(out)} bytes planned as {plan.total_size}")
    yield bytes(out)


def _framed(data: bytes, *, last: bool) -> bytes:
    """``data`` as stored deflate blocks of MAX_BLOCK bytes (the last read's last block is
    final; an empty file is one empty final block)."""
    step = zipformat.MAX_BLOCK
    starts = range(0, len(data), step) if data else range(1)
    pieces: list[bytes] = []
    for start in starts:
        piece = data[start : start + step]
        final = last and start + step >= len(data)
        pieces += (zipformat.block_header(len(piece), final=final), piece)
    return b"".join(pieces)


class _Reader:
    """One member's file, read once: CRC (and MD5) as it goes, checked at its end."""

    def __init__(self, source: Source, *, md5: bool, check_mtime: bool) -> None:
        self.source = source
        self.crc = 0
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.check_mtime = check_mtime

    async def blocks(self, read_size: int) -> AsyncIterator[tuple[bytes, bool]]:
        """(bytes, is last) reads: exactly the planned size, or raise. An empty file yields one
        empty last read."""
        handle = await anyio.to_thread.run_sync(_open, self.source)
        try:
            remaining = self.source.size
            while True:
                data = await anyio.to_thread.run_sync(self._read, handle, min(read_size, remaining))
                remaining -= len(data)
                if remaining == 0:
                    await anyio.to_thread.run_sync(self._check_end, handle)
                    yield data, True
                    return
                yield data, False
        finally:
            handle.close()

    def _read(self, handle: BinaryIO, size: int) -> bytes:
        path = self.source.path
        try:
            data = handle.read(size)
        except OSError as exc:
            raise LocalFileError(f"{path}: cannot be read ({exc.strerror})") from exc
        if size and not data:
            raise SourceChangedError(f"{path}: shrank since it was planned", path)
        self.crc = zlib.crc32(data, self.crc)
        if self.md5 is not None:
            self.md5.update(data)
        return data

    def _check_end(self, handle: BinaryIO) -> None:
        path = self.source.path
        if handle.read(1):
            raise SourceChangedError(f"{path}: grew since it was planned", path)
        if self.check_mtime and os.fstat(handle.fileno()).st_mtime_ns != self.source.mtime_ns:
            raise SourceChangedError(f"{path}: changed while being read; not sent as that "
                                     "version", path)  # fmt: skip


def _open(source: Source) -> BinaryIO:
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
