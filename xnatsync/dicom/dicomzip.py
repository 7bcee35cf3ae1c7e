"""One DICOM-zip request body: planned from names and sizes, streamed with its exact length.

``ZipPlan(instances)`` names every member and computes ``total_size`` without reading a file;
``zip_stream(plan)`` yields exactly that many bytes, reading each file once, a block at a time,
in worker threads (the record layout is ``zipformat``'s: deflate-framed but uncompressed
entries with data descriptors, ZIP64 when needed).

Invariants:
* Member names are ``{scan}/{base name}``: ``scan`` is the SeriesNumber (XNAT's scan ID),
  else the SeriesInstanceUID, else ``0``, with characters outside ``[A-Za-z0-9._-]`` as
  ``_``; the base name is the file's own (XNAT keeps base names and drops folders, §11.8),
  with ``\\``, control characters and bytes that are not UTF-8 as ``_``. Two instances of one
  scan with the same base name would be one file on XNAT, so *every* instance of such a clash
  is named ``{stem}-{SOPInstanceUID}{suffix}`` (the UID made safe like ``scan``), stable
  whichever copy comes first; without a SOP UID (or if that name is taken) ``-{n}`` is
  added, smallest n first in the given order. Names are then unique in the zip.
* Lowering ``limit``/``count_limit`` (tests) writes ZIP64 records for small values: valid zip,
  read by Python and by JDK 21+, but JDK 17's ``ZipInputStream`` picks the descriptor form
  from the real sizes and fails on them. The defaults are the format's own limits.
* ``total_size`` is computed from names and the sizes recorded at discovery; the stream
  yields exactly ``total_size`` bytes or raises. Before the first byte every file's size is
  checked; a file whose size changed since discovery (or that vanished) raises
  ``SourceChangedError`` naming it, then or while streaming (before more bytes than planned
  could go out); the caller resends that study later. Other read errors raise
  ``LocalFileError`` naming the file.
* Memory is flat: one block per open file, one file open at a time.
* ``digests``, when given, receives each member's MD5 (by member name) once its last byte
  was read: hashed in the same worker-thread hop as the CRC, so each file is read once.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

import anyio

from xnatsync import zipformat
from xnatsync.dicom.instance import Instance
from xnatsync.errors import LocalFileError, SourceChangedError

BLOCK = 16 * zipformat.MAX_BLOCK  # ~1 MiB, a whole number of deflate blocks
_UNSAFE_SCAN = re.compile(r"[^A-Za-z0-9._-]")
_UNSAFE_NAME = re.compile("[\\\\\x00-\x1f\x7f\ud800-\udfff]")  # and undecodable bytes


@dataclass(frozen=True, slots=True)
class Member:
    """One planned member: the instance and its zip records' geometry."""

    instance: Instance
    entry: zipformat.Entry

    @property
    def name(self) -> str:
        return self.entry.name.decode()


class ZipPlan:
    """The zip of ``instances`` (in the given order), sized before any byte is read."""

    def __init__(
        self,
        instances: Sequence[Instance],
        *,
        names: Sequence[str] | None = None,
        limit: int = zipformat.LIMIT,
        count_limit: int = zipformat.COUNT_LIMIT,
    ) -> None:
        """``names``: the member names to use (default ``member_names(instances)``); a part of
        a study keeps the names the whole study gives its instances."""
        self.limits = {"limit": limit, "count_limit": count_limit}
        members: list[Member] = []
        offset = 0
        chosen = member_names(instances) if names is None else list(names)
        for instance, name in zip(instances, chosen, strict=True):
            entry = zipformat.Entry(name.encode(), instance.size, offset, instance.mtime_ns, limit)
            members.append(Member(instance, entry))
            offset += zipformat.entry_length(entry)
        self.members = tuple(members)
        self.cd_offset = offset
        self.cd_size = sum(len(zipformat.central_header(m.entry, 0)) for m in members)
        end = zipformat.end_length(len(members), offset, self.cd_size, **self.limits)
        self.total_size = offset + self.cd_size + end


def scan_folder(instance: Instance) -> str:
    """The member folder: SeriesNumber, else SeriesInstanceUID, else ``0``, made safe."""
    return _UNSAFE_SCAN.sub("_", instance.series_number or instance.series_uid or "0")


def member_names(instances: Sequence[Instance]) -> list[str]:
    """Each instance's member name, unique in the zip (module invariants)."""
    wanted = [(scan_folder(i), _UNSAFE_NAME.sub("_", i.path.name) or "_") for i in instances]
    counts: dict[tuple[str, str], int] = {}
    for key in wanted:
        counts[key] = counts.get(key, 0) + 1
    names: list[str] = []
    taken: set[str] = {f"{folder}/{base}" for folder, base in wanted if counts[(folder, base)] == 1}
    next_n: dict[tuple[str, str], int] = {}  # per clash: where numbering resumes
    for instance, (folder, base) in zip(instances, wanted, strict=True):
        if counts[(folder, base)] == 1:
            names.append(f"{folder}/{base}")
            continue
        stem, suffix = _split(base)
        tag = _UNSAFE_SCAN.sub("_", instance.sop_uid)
        name = f"{folder}/{stem}-{tag}{suffix}" if tag else ""
        if not name or name in taken:
            prefix = f"{folder}/{stem}-{tag}-" if tag else f"{folder}/{stem}-"
            n = next_n.get((folder, base), 1)
            while (name := f"{prefix}{n}{suffix}") in taken:
                n += 1
            next_n[(folder, base)] = n + 1
        taken.add(name)
        names.append(name)
    return names


def _split(base: str) -> tuple[str, str]:
    suffix = PurePath(base).suffix
    return (base[: -len(suffix)], suffix) if suffix and len(suffix) < len(base) else (base, "")


async def zip_stream(
    plan: ZipPlan, *, block: int = BLOCK, digests: dict[str, str] | None = None
) -> AsyncIterator[bytes]:
    """Yield the zip of ``plan``: exactly ``plan.total_size`` bytes, in chunks of ~``block``;
    each member's MD5 into ``digests`` (if given) once the file was read to its end."""
    read_size = max(1, block // zipformat.MAX_BLOCK) * zipformat.MAX_BLOCK
    await anyio.to_thread.run_sync(_check_sizes, plan.members)
    crcs: list[int] = []
    out = bytearray()
    sent = 0
    for member in plan.members:
        out += zipformat.local_header(member.entry)
        crc = 0
        md5 = hashlib.md5(usedforsecurity=False)
        async for data, crc_so_far, last in _file_blocks(member.instance, read_size, md5):
            crc = crc_so_far
            out += _framed(data, last=last)
            if len(out) >= block:
                sent += len(out)
                yield bytes(out)
                out.clear()
        if digests is not None:
            digests[member.name] = md5.hexdigest()
        out += zipformat.descriptor(member.entry, crc)
        crcs.append(crc)
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


async def _file_blocks(
    instance: Instance, read_size: int, md5: hashlib._Hash
) -> AsyncIterator[tuple[bytes, int, bool]]:
    """(bytes, CRC so far, is last) reads of the file: exactly its planned size, or raise.
    Reads, CRC and ``md5`` run in worker threads; an empty file yields one empty last read."""
    handle = await anyio.to_thread.run_sync(_open, instance)
    try:
        remaining, crc = instance.size, 0
        while True:
            size = min(read_size, remaining)
            data, crc = await anyio.to_thread.run_sync(_read, handle, instance, size, crc, md5)
            remaining -= len(data)
            if remaining == 0:
                await anyio.to_thread.run_sync(_check_end, handle, instance)
                yield data, crc, True
                return
            yield data, crc, False
    finally:
        handle.close()


def _open(instance: Instance) -> BinaryIO:
    try:
        handle = open(instance.path, "rb")  # noqa: SIM115 — closed by _file_blocks
    except FileNotFoundError:
        raise SourceChangedError(
            f"{instance.path}: vanished since it was found", instance.path
        ) from None
    except OSError as exc:
        raise LocalFileError(f"{instance.path}: cannot be read ({exc.strerror})") from exc
    return handle


def _read(
    handle: BinaryIO, instance: Instance, size: int, crc: int, md5: hashlib._Hash
) -> tuple[bytes, int]:
    try:
        data = handle.read(size)
    except OSError as exc:
        raise LocalFileError(f"{instance.path}: cannot be read ({exc.strerror})") from exc
    if size and not data:
        raise SourceChangedError(f"{instance.path}: shrank since it was found", instance.path)
    md5.update(data)
    return data, zlib.crc32(data, crc)


def _check_end(handle: BinaryIO, instance: Instance) -> None:
    if handle.read(1):
        raise SourceChangedError(f"{instance.path}: grew since it was found", instance.path)


def _check_sizes(members: Sequence[Member]) -> None:
    """Before the first byte: every file still has its planned size (blocking)."""
    for member in members:
        instance = member.instance
        try:
            size = os.stat(instance.path).st_size
        except FileNotFoundError:
            raise SourceChangedError(
                f"{instance.path}: vanished since it was found", instance.path
            ) from None
        except OSError as exc:
            raise LocalFileError(f"{instance.path}: cannot be read ({exc.strerror})") from exc
        if size != instance.size:
            raise SourceChangedError(
                f"{instance.path}: size changed since it was found "
                f"({instance.size} → {size} bytes); send its study again later",
                instance.path,
            )
