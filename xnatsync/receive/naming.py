"""What a received instance is called in the spool, and the Part-10 header it gets (pure).

* ``spool_name(uid)``: a conformant SOP Instance UID (digits and dots, at most 64 characters,
  no empty or zero-led components) is its own file name, plus ``.dcm``: UIDs are already safe
  on every filesystem, and the same instance always lands on the same name, so a repeated
  instance replaces the earlier file. Anything else a sender may put there (letters, spaces,
  slashes, more than 64 characters) keeps its characters from ``[0-9A-Za-z.-]``, others become
  ``_``, and gets the first 16 hex digits of the SHA-256 of the UID as sent, so two different
  bad UIDs never share a name; the name never starts with a dot (the spool's hidden entries
  are ours) and stays short. An empty UID has no name (``None``): the instance is refused.
* ``file_header(...)``: the 128-byte preamble, ``DICM`` and the File Meta Information group
  (Explicit VR Little Endian, as Part 10 requires), encoded here rather than through pydicom,
  whose UID validation is global configuration. The data set that follows it is the sender's,
  byte for byte, in the negotiated transfer syntax.
"""

from __future__ import annotations

import hashlib
import re
import struct

from xnatsync.version import __version__

# Our implementation's UID: a 2.25 (UUID-derived) UID, so no registered root is needed.
IMPLEMENTATION_CLASS_UID = "2.25.83210854214941852112353383423366682192"
IMPLEMENTATION_VERSION_NAME = f"XNATSYNC_{__version__}"[:16]
SUFFIX = ".dcm"

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_UNSAFE = re.compile(r"[^0-9A-Za-z.-]")
_MAX_UID = 64


def is_conformant_uid(uid: str) -> bool:
    return len(uid) <= _MAX_UID and _UID.fullmatch(uid) is not None


def spool_name(uid: str) -> str | None:
    """The spool file name for an instance of SOP Instance UID ``uid`` (trailing NUL and space
    padding ignored); ``None`` for an empty UID."""
    uid = uid.rstrip("\0 ")
    if not uid:
        return None
    if is_conformant_uid(uid):
        return uid + SUFFIX
    digest = hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    safe = _UNSAFE.sub("_", uid[:_MAX_UID])
    if safe.startswith("."):
        safe = "_" + safe[1:]
    return f"{safe}-{digest}{SUFFIX}"


def file_header(
    *, sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """Preamble, prefix and File Meta Information for a data set in ``transfer_syntax``.

    ``source_ae`` is the calling AE title of the sender (Source Application Entity Title)."""
    elements = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _uid_value(sop_class)),
            _element(0x0003, b"UI", _uid_value(sop_instance)),
            _element(0x0010, b"UI", _uid_value(transfer_syntax)),
            _element(0x0012, b"UI", _uid_value(IMPLEMENTATION_CLASS_UID)),
            _element(0x0013, b"SH", _text_value(IMPLEMENTATION_VERSION_NAME)),
            _element(0x0016, b"AE", _text_value(source_ae.strip())),
        )
    )
    group_length = _element(0x0000, b"UL", struct.pack("<I", len(elements)))
    return b"\x00" * 128 + b"DICM" + group_length + elements


def _uid_value(uid: str) -> bytes:
    value = uid.rstrip("\0 ").encode("ascii", "backslashreplace")
    return value + b"\0" if len(value) % 2 else value


def _text_value(text: str) -> bytes:
    value = text.encode("ascii", "backslashreplace")
    return value + b" " if len(value) % 2 else value


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    """One group-0002 element in Explicit VR Little Endian."""
    if vr == b"OB":  # 2 reserved bytes, then a 4-byte length
        return (
            struct.pack("<HH", 0x0002, element)
            + vr
            + b"\0\0"
            + struct.pack("<I", len(value))
            + value
        )
    return struct.pack("<HH", 0x0002, element) + vr + struct.pack("<H", len(value)) + value
