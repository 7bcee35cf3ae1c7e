"""Stage an upload for the import service: spool it to disk, unpack it, read every header.

Blocking code meant to run in a worker thread (`anyio.to_thread.run_sync`); it touches only the
spool file and a private staging directory, never the prearchive or the store, so the event
loop applies the results without races.

Invariants: members are staged in archive order; staging stops at the first unreadable member
unless unparsable members are to be ignored (XNAT keeps what it imported before the bad one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xnatsync.emulator.dicom_import import (
    BadArchive,
    DicomHeader,
    UnreadableDicom,
    as_archived,
    base_name,
    instance_file_name,
    iter_archive,
    read_header,
)


@dataclass(frozen=True, slots=True)
class Staged:
    """One readable instance: its file name in the session, its header, its staged bytes."""

    name: str
    header: DicomHeader
    path: Path


@dataclass(slots=True)
class StageResult:
    """What staging found: the readable instances and, if it stopped, why."""

    instances: list[Staged] = field(default_factory=list)
    unreadable: str | None = None  # member name of the first unreadable object


def stage_single(spool: Path, file_name: str, staging: Path, *, rename: bool) -> StageResult:
    """One DICOM instance (gradual-DICOM); named by the DICOM file namer unless a name came."""
    result = StageResult()
    try:
        with spool.open("rb") as handle:
            header = read_header(file_name, handle)
    except UnreadableDicom as exc:
        result.unreadable = exc.name
        return result
    generic = file_name in ("", "upload", "upload.dcm")
    name = instance_file_name(header) if rename or generic else base_name(file_name)
    target = staging / "0"
    target.write_bytes(as_archived(spool.read_bytes(), header))
    spool.unlink()
    result.instances.append(Staged(name, header, target))
    return result


def stage_archive(
    spool: Path, file_name: str, staging: Path, *, rename: bool, ignore_unparsable: bool
) -> StageResult:
    """Every member of a zip/tar upload (DICOM-zip), keeping base names (§11.8)."""
    result = StageResult()
    try:
        for index, (member, data) in enumerate(iter_archive(spool, file_name)):
            try:
                header = read_header(member, data)
            except UnreadableDicom:
                if ignore_unparsable:
                    continue
                result.unreadable = member
                return result
            target = staging / str(index)
            target.write_bytes(as_archived(data, header))
            name = instance_file_name(header) if rename else base_name(member)
            result.instances.append(Staged(name, header, target))
    except BadArchive:
        result.unreadable = file_name
    return result
