"""One DICOM-zip request body: planned from names and sizes, streamed with its exact length.

``ZipPlan(instances)`` names every member (the DICOM rules below) and is the engine's
``zipbody.ZipPlan`` of those files; ``zip_stream`` is the engine's (``zipbody``: the record
bytes, the exact length, the checks of each file while it is read).

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
* ``total_size`` and the checks while streaming are ``zipbody``'s; sizes are those recorded
  at discovery, so a file that changed since raises ``SourceChangedError`` naming it and the
  caller resends that study later.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath

from xnatsync import zipbody, zipformat
from xnatsync.dicom.instance import Instance
from xnatsync.zipbody import zip_stream

__all__ = ["ZipPlan", "member_names", "scan_folder", "zip_stream"]

_UNSAFE_SCAN = re.compile(r"[^A-Za-z0-9._-]")
_UNSAFE_NAME = re.compile("[\\\\\x00-\x1f\x7f\ud800-\udfff]")  # and undecodable bytes


class ZipPlan(zipbody.ZipPlan):
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
        chosen = member_names(instances) if names is None else list(names)
        sources = [zipbody.Source(i.path, name, i.size, i.mtime_ns)
                   for i, name in zip(instances, chosen, strict=True)]  # fmt: skip
        super().__init__(sources, limit=limit, count_limit=count_limit)
        self.instances = tuple(instances)


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
