"""Path safety under a destination, as pure checks over strings (no filesystem call here).

Every local path xnatsync writes is built from names a server listed, and server names are
untrusted. A safe relative path is NFC-normalised and made of non-empty segments, none ``.`` or
``..``, none holding ``/``, ``\\``, NUL or a control character, none a Windows drive, none over
255 UTF-8 bytes. The one I/O check that goes with these (no existing component under DEST is a
symlink) is ``localfs.resolve_under``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

from xnatsync.errors import UnsafePathError

MAX_NAME_BYTES = 255
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_DRIVE = re.compile("[A-Za-z]:")


def segment_problem(seg: str) -> str:
    """What makes one (NFC) path segment unsafe, or "" if nothing does."""
    if seg == "":
        return "empty segment (absolute path or '//')"
    if seg in (".", ".."):
        return f"'{seg}' segment"
    if "/" in seg or "\\" in seg:
        return "slash or backslash"
    if _CONTROL.search(seg):
        return "NUL or control character"
    if _DRIVE.match(seg):  # with no slashes, a drive is the only possible Windows anchor
        return "Windows drive"
    if len(seg) * 4 > MAX_NAME_BYTES and len(seg.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    return ""


def char_problem(text: str) -> str:
    """A backslash or control character anywhere in ``text``, or ""."""
    if "\\" in text or any(unicodedata.category(ch) == "Cc" for ch in text):
        return "backslash or control character"
    return ""


def check_segment(segment: str, what: str) -> str:
    """Return the NFC form of one path segment, or raise ``UnsafePathError`` naming ``what``."""
    seg = unicodedata.normalize("NFC", segment)
    problem = segment_problem(seg)
    if problem:
        raise UnsafePathError(f"unsafe path for {what}: {problem} in {segment!r}")
    return seg


def checked_parts(parts: Iterable[str], what: str) -> tuple[str, ...]:
    """NFC-normalised segments, each checked; ``UnsafePathError`` naming ``what`` otherwise."""
    return tuple(check_segment(part, what) for part in parts)


def safe_relpath(path: str, what: str) -> PurePosixPath:
    """Check a "/"-separated relative path segment by segment; NFC-normalised result."""
    if path.startswith("/"):
        raise UnsafePathError(f"unsafe path for {what}: absolute path {path!r}")
    return PurePosixPath("/".join(checked_parts(path.split("/"), what)))


def fold(path: str) -> str:
    """The name a case-insensitive, normalisation-insensitive filesystem would see."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())
