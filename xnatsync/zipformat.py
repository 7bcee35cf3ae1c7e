"""The bytes of a streamed zip: records, and deflate framing without compression (pure).

Why "deflated" and not "stored": XNAT unpacks a DICOM-zip upload with Java's
``java.util.zip.ZipInputStream`` (``DicomZipImporter.importZipFile``), which refuses a STORED
entry with a data descriptor ("only DEFLATED entries can have EXT descriptor"). A data
descriptor is what lets the CRC be computed while the file streams (each file read once), so
entries are method 8 (deflate) holding *stored deflate blocks* (RFC 1951 BTYPE 00): the bytes
go out as they are, each run of at most 65,535 bytes behind a 5-byte block header. The
compressed size is then exact arithmetic (``deflated_size``), and so is the whole zip's length.

ZIP64 (APPNOTE 4.5.3, 4.3.14–16), decided per value against ``limit`` (0xFFFFFFFF unless a
test lowers it):
* an entry whose compressed size exceeds ``limit`` gets version 4.5, a Zip64 extra field in
  its local header (sizes), size fields of 0xFFFFFFFF, and a data descriptor with 8-byte
  sizes; a smaller entry has none of these (Java's reader picks the descriptor's form from
  the real sizes, or, in newer JDKs, from the local Zip64 field: both agree this way);
* a central-directory entry lists in its Zip64 extra exactly the fields set to 0xFFFFFFFF
  (sizes, local header offset), in the APPNOTE's order;
* the Zip64 end record and locator are written when the entry count exceeds ``count_limit``
  (0xFFFF) or the directory's offset or size exceeds ``limit``.

Record lengths never depend on a CRC, so a plan can size everything before any file is read.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

MAX_BLOCK = 0xFFFF  # a stored deflate block holds at most 65,535 bytes
BLOCK_HEADER = 5  # 1 byte BFINAL/BTYPE (padded to a byte), LEN, NLEN
LIMIT = 0xFFFFFFFF
COUNT_LIMIT = 0xFFFF
_FLAGS = 0x0008 | 0x0800  # data descriptor follows; names are UTF-8
_DEFLATED = 8
_VERSION = 20
_VERSION_ZIP64 = 45
_MADE_BY = (3 << 8) | _VERSION_ZIP64  # Unix
_FILE_MODE = 0o100644 << 16
_ZIP64_TAG = 0x0001


@dataclass(frozen=True, slots=True)
class Entry:
    """What the records of one member need to know (its CRC comes later)."""

    name: bytes  # UTF-8
    size: int  # file bytes
    offset: int  # of its local header in the zip
    mtime_ns: int
    limit: int = LIMIT

    @property
    def compressed(self) -> int:
        return deflated_size(self.size)

    @property
    def zip64(self) -> bool:
        return self.compressed > self.limit  # compressed ≥ size, so this covers both


def deflated_size(size: int) -> int:
    """Bytes of ``size`` bytes as stored deflate blocks (an empty file is one empty block)."""
    blocks = max(1, -(-size // MAX_BLOCK))
    return size + BLOCK_HEADER * blocks


def block_header(length: int, *, final: bool) -> bytes:
    """The 5-byte header of a stored deflate block of ``length`` bytes."""
    return struct.pack("<BHH", 1 if final else 0, length, length ^ 0xFFFF)


def dos_time(mtime_ns: int) -> tuple[int, int]:
    """(time, date) in MS-DOS form, UTC, clamped to 1980–2107 (zip's range)."""
    year, month, day, hour, minute, second = time.gmtime(mtime_ns // 1_000_000_000)[:6]
    if year < 1980:
        year, month, day, hour, minute, second = 1980, 1, 1, 0, 0, 0
    year = min(year, 2107)
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


def local_header(entry: Entry) -> bytes:
    """The local file header (CRC and sizes are in the descriptor after the data)."""
    mtime, mdate = dos_time(entry.mtime_ns)
    extra = b""
    sizes = 0
    if entry.zip64:
        extra = struct.pack("<HHQQ", _ZIP64_TAG, 16, entry.size, entry.compressed)
        sizes = LIMIT
    version = _VERSION_ZIP64 if entry.zip64 else _VERSION
    fixed = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, version, _FLAGS, _DEFLATED, mtime, mdate,
        0, sizes, sizes, len(entry.name), len(extra),
    )  # fmt: skip
    return fixed + entry.name + extra


def descriptor(entry: Entry, crc: int) -> bytes:
    """The data descriptor after the entry's data: 8-byte sizes for a Zip64 entry."""
    if entry.zip64:
        return struct.pack("<IIQQ", 0x08074B50, crc, entry.compressed, entry.size)
    return struct.pack("<IIII", 0x08074B50, crc, entry.compressed, entry.size)


def entry_length(entry: Entry) -> int:
    """Bytes of the entry in the zip body: header, data and descriptor."""
    return len(local_header(entry)) + entry.compressed + len(descriptor(entry, 0))


def central_header(entry: Entry, crc: int) -> bytes:
    """The entry's central-directory record."""
    mtime, mdate = dos_time(entry.mtime_ns)
    fields: list[int] = []
    size = compressed = offset = 0
    if entry.zip64:
        fields += [entry.size, entry.compressed]
        size = compressed = LIMIT
    else:
        size, compressed = entry.size, entry.compressed
    if entry.offset > entry.limit:
        fields.append(entry.offset)
        offset = LIMIT
    else:
        offset = entry.offset
    extra = b""
    if fields:
        extra = struct.pack(f"<HH{len(fields)}Q", _ZIP64_TAG, 8 * len(fields), *fields)
    version = _VERSION_ZIP64 if fields else _VERSION
    fixed = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, _MADE_BY, version, _FLAGS, _DEFLATED, mtime, mdate,
        crc, compressed, size, len(entry.name), len(extra), 0, 0, 0, _FILE_MODE, offset,
    )  # fmt: skip
    return fixed + entry.name + extra


def end_records(
    count: int, cd_offset: int, cd_size: int, *, limit: int = LIMIT, count_limit: int = COUNT_LIMIT
) -> bytes:
    """The end of central directory record, preceded by the Zip64 end record and locator
    when a value does not fit (or exceeds a lowered limit)."""
    zip64 = count > count_limit or cd_offset > limit or cd_size > limit
    out = b""
    if zip64:
        zip64_end = cd_offset + cd_size
        out += struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, _MADE_BY, _VERSION_ZIP64, 0, 0,
            count, count, cd_size, cd_offset,
        )  # fmt: skip
        out += struct.pack("<IIQI", 0x07064B50, 0, zip64_end, 1)
    small_count = COUNT_LIMIT if zip64 else count
    return out + struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, small_count, small_count,
        LIMIT if zip64 else cd_size, LIMIT if zip64 else cd_offset, 0,
    )  # fmt: skip


def end_length(count: int, cd_offset: int, cd_size: int, **limits: int) -> int:
    return len(end_records(count, cd_offset, cd_size, **limits))
