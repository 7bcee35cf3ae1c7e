"""Read one file's DICOM header (blocking; ``discover`` runs it in a worker thread).

Rules, in order:

1. The path is opened without following a symlink (unless asked), and must be a regular file;
   ``os`` errors (permission, I/O, vanished) make it ``Unreadable`` with the reason.
2. A file with ``DICM`` at offset 128 is Part-10 DICOM: it is read with pydicom up to the pixel
   data (``stop_before_pixels``; values over ``DEFER`` bytes are skipped, not loaded). If its
   header cannot be parsed, is cut short, or holds neither StudyInstanceUID nor
   SOPInstanceUID, it is ``Unreadable``.
3. A file without the preamble is DICOM only by its tags: it must start with an element of
   group 0000, 0002 or 0008 (a quick test that spares pydicom most non-DICOM files), parse with
   ``force=True``, carry a well-formed StudyInstanceUID or SOPInstanceUID, and, if it has file
   meta, a DICOM transfer syntax UID. Anything else is ``Skipped`` as not DICOM; one that
   passes but is cut short is ``Unreadable``.
4. "Cut short" means: the last element read ends past the end of the file, or bytes that are
   not a whole element remain after it, or the data set describes an image (Rows) and the
   file ends before its pixel data.
5. A file that ends inside its pixel data (the Pixel Data element's length, read from its few
   header bytes, runs past the end of the file; encapsulated data of undefined length is not
   checked) is ``Unreadable`` too, and so not sent. XNAT's importer would take it: it parses
   the header only up to a stop tag and copies the rest byte for byte, so the damaged image
   would be archived silently, and once archived a repaired copy of the same instance is not
   simply appended (its name is taken). Reported, the file is sent by a later run once it is
   whole (its study's instances change, so the study is looked at again).

Tag values are decoded from the raw element bytes (with the file's Specific Character Set for
person names and free text) without pydicom's value validation, so a non-conformant value never
becomes a warning, and padding (spaces, NUL) is stripped. pydicom's global ``config`` is never
touched.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pydicom
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from xnatsync.dicom.instance import TAGS, Found, Instance, Skipped, Unreadable

DEFER = 64 * 1024  # header values larger than this are skipped over, never held in memory
_PREAMBLE = 128
_MAGIC = b"DICM"
_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_ROWS = 0x00280010
_CHARSET = 0x00080005
_FIRST_GROUPS = frozenset({0x0000, 0x0002, 0x0008})
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_PADDING = " \x00"
NOT_DICOM = "not DICOM"


def read_found(path: Path, *, follow_symlinks: bool = False) -> Found:
    """What ``path`` is: an ``Instance``, ``Skipped`` (not DICOM, not a file) or ``Unreadable``."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            return Skipped(path, "symlink (not followed)")
        return Unreadable(path, _os_reason(exc))
    try:
        with os.fdopen(fd, "rb") as handle:
            return _read_open(path, handle)
    except OSError as exc:
        return Unreadable(path, _os_reason(exc))


def _read_open(path: Path, handle: BinaryIO) -> Found:
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode):
        return Skipped(path, "not a regular file")
    head = handle.read(_PREAMBLE + len(_MAGIC))
    part10 = head[_PREAMBLE:] == _MAGIC
    if not part10 and not _starts_like_dicom(head):
        return Skipped(path, NOT_DICOM)
    handle.seek(0)
    try:
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=not part10, defer_size=DEFER)
    except OSError:
        raise
    except Exception as exc:  # pydicom raises many types on malformed input; all mean "bad"
        if part10:
            return Unreadable(path, f"unreadable DICOM header: {type(exc).__name__}: {exc}")
        return Skipped(path, NOT_DICOM)
    ended_at = handle.tell()
    found = _judge(path, ds, info, part10=part10, ended_at=ended_at)
    if isinstance(found, Instance) and (cut := _pixels_cut(handle, ds, info.st_size, ended_at)):
        have, need = cut
        return Unreadable(path, f"truncated inside its pixel data ({have} of {need} bytes): "
                                "not sent (XNAT would archive the incomplete image)")  # fmt: skip
    return found


def _judge(path: Path, ds: Dataset, info: os.stat_result, *, part10: bool, ended_at: int) -> Found:
    """Apply rules 2–4 to a parsed header."""
    values = {keyword: _text(ds, keyword) for keyword in TAGS}
    has_uid = any(
        _UID.fullmatch(values[k]) and len(values[k]) <= 64
        for k in ("StudyInstanceUID", "SOPInstanceUID")
    )
    if not part10 and not (has_uid and _plausible_syntax(ds)):
        return Skipped(path, NOT_DICOM)
    if _cut_short(ds, size=info.st_size, ended_at=ended_at):
        return Unreadable(path, "truncated DICOM header (the file ends inside it)")
    if not has_uid:
        return Unreadable(path, "DICOM header has neither StudyInstanceUID nor SOPInstanceUID")
    fields = {TAGS[keyword]: value for keyword, value in values.items()}
    return Instance(
        path=path, size=info.st_size, mtime_ns=info.st_mtime_ns, part10=part10, **fields
    )


def _starts_like_dicom(head: bytes) -> bool:
    """Rule 3's quick test: the first element's group is one a data set or file meta starts
    with (little endian, as file meta always is)."""
    return len(head) >= 8 and int.from_bytes(head[:2], "little") in _FIRST_GROUPS


def _plausible_syntax(ds: Dataset) -> bool:
    """No file meta (an implicit-VR data set), or a transfer syntax UID of DICOM's root."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return not syntax or syntax.startswith("1.2.840.10008.1.2")


def _cut_short(ds: Dataset, *, size: int, ended_at: int) -> bool:
    """Rule 4: does the file end inside the header?"""
    tags = list(ds.keys())
    if not tags:
        return ended_at >= size  # nothing after the file meta; a Part-10 file cut there
    last = ds.get_item(tags[-1])
    if isinstance(last, RawDataElement) and last.length != _UNDEFINED:
        end = last.value_tell + last.length
        if end > size or (ended_at >= size and end < size):
            return True
    return ended_at >= size and _ROWS in ds and _PIXEL_DATA not in ds


def _pixels_cut(handle: BinaryIO, ds: Dataset, size: int, ended_at: int) -> tuple[int, int] | None:
    """Rule 5: (bytes present, bytes the Pixel Data element says it has) if the file ends
    inside it; ``None`` if it is whole, encapsulated (undefined length) or absent. pydicom
    leaves the file at the Pixel Data tag when it stops before it."""
    header = handle.read(12)
    implicit, little = getattr(ds, "original_encoding", (False, True))
    order: Literal["little", "big"] = "little" if little else "big"
    if (
        len(header) < 8
        or int.from_bytes(header[:2], order) << 16 | int.from_bytes(header[2:4], order)
        != _PIXEL_DATA
    ):
        return None
    if implicit:
        start, length = 8, int.from_bytes(header[4:8], order)
    elif header[4:6].decode("ascii", "replace") in EXPLICIT_VR_LENGTH_32 and len(header) == 12:
        start, length = 12, int.from_bytes(header[8:12], order)
    else:
        start, length = 8, int.from_bytes(header[6:8], order)
    if length == _UNDEFINED:
        return None
    have = size - ended_at - start
    return (max(have, 0), length) if have < length else None


def _text(ds: Dataset, keyword: str) -> str:
    """The element's value as text, padding stripped, ``""`` if absent; no validation."""
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return ""
    element: Any = ds.get_item(tag)
    if not isinstance(element, RawDataElement):
        return "" if element.value is None else str(element.value).strip(_PADDING)
    raw = element.value
    if not isinstance(raw, bytes):
        return ""  # deferred (over DEFER bytes): no tag we keep is that long
    if keyword in _PERSON_AND_TEXT:
        return _decode(raw, _encodings(ds)).strip(_PADDING)
    return raw.decode("ascii", errors="replace").strip(_PADDING)


def _decode(raw: bytes, encodings: list[str]) -> str:
    """Text in the file's character set: ISO 2022 escapes through pydicom, otherwise the first
    encoding that decodes strictly, else the first with replacement characters."""
    if b"\x1b" in raw:
        return str(decode_bytes(raw, encodings, set()))
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode(encodings[0] if encodings else "ascii", errors="replace")


_PERSON_AND_TEXT = frozenset(
    {
        "PatientName",
        "PatientID",
        "StudyDescription",
        "SeriesDescription",
        "AccessionNumber",
        "PatientComments",
        "StudyComments",
    }
)


def _encodings(ds: Dataset) -> list[str]:
    """Python codecs for the file's Specific Character Set (default repertoire if absent)."""
    element: Any = ds.get_item(_CHARSET) if _CHARSET in ds else None
    if element is None:
        return list(convert_encodings(None))
    raw = element.value
    text = raw.decode("ascii", errors="replace") if isinstance(raw, bytes) else str(raw or "")
    terms = [term.strip(_PADDING) for term in text.split("\\")]
    try:
        return list(convert_encodings([term for term in terms if term] or None))
    except LookupError:
        return list(convert_encodings(None))


def _os_reason(exc: OSError) -> str:
    return f"{exc.strerror or type(exc).__name__} (errno {exc.errno})" if exc.errno else str(exc)
