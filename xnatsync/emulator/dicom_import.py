"""DICOM side of the import service: unpack uploads, read headers, name sessions and files.

Pure functions and values, no aiohttp and no store: the importer routes call these (in a worker
thread for the slow parts) and apply the results to the prearchive.

Invariants:
* Headers are read with `stop_before_pixels`. A member without the Part-10 preamble is read
  as dcm4che's `DicomInputStream` reads it for XNAT (the encoding guessed from a first element
  of group 0002 or 0008; read from XNAT's GradualDicomImporter, which passes no transfer
  syntax); anything else, or a member with no StudyInstanceUID, is "unreadable" (§5.1).
* Labels derived from headers are cleaned the way XNAT cleans them: every character outside
  `[A-Za-z0-9_-]` becomes `_`.
* Identification follows XNAT's default rules (§11.7): explicit parameters first, then
  `Project:`/`Subject:`/`Session:` tags in the patient or study comments, then StudyDescription
  / AccessionNumber for the project (only if such a project exists), PatientName for the
  subject and PatientID for the session; unknown project → `Unassigned`, empty session →
  `dicom_upload`.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import pydicom
import pydicom.filewriter
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

UNASSIGNED = "Unassigned"
DEFAULT_SESSION_LABEL = "dicom_upload"

_SESSION_TYPES = {
    "MR": "xnat:mrSessionData",
    "CT": "xnat:ctSessionData",
    "PT": "xnat:petSessionData",
    "CR": "xnat:crSessionData",
    "US": "xnat:usSessionData",
}
_SCAN_TYPES = {
    "MR": "xnat:mrScanData",
    "CT": "xnat:ctScanData",
    "PT": "xnat:petScanData",
    "CR": "xnat:crScanData",
    "US": "xnat:usScanData",
}
# A PET/CT or PET/MR study is a PET session on XNAT; otherwise the first modality seen wins.
_MODALITY_PRIORITY = ("PT", "MR", "CT", "CR", "US")
_KEYS = ("project", "subject", "session")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_\-]")


class UnreadableDicom(ValueError):
    """A member that is not a DICOM object XNAT could import; `name` is the member name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unable to read DICOM object {name}")
        self.name = name


class BadArchive(ValueError):
    """The upload is not a readable zip/tar archive."""


@dataclass(frozen=True)
class DicomHeader:
    """The header fields the importer uses (strings, `""` when absent)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    series_number: str
    instance_number: str
    series_description: str
    modality: str
    patient_name: str
    patient_id: str
    study_date: str
    study_time: str
    study_description: str
    accession_number: str
    comments: str


@dataclass(frozen=True)
class Naming:
    """Explicit naming parameters of an import request (None = derive from DICOM)."""

    project: str | None = None
    subject: str | None = None
    session: str | None = None


@dataclass(frozen=True)
class Identity:
    """Where an instance goes: project ID (or Unassigned), subject and session labels."""

    project: str
    subject: str
    session: str


def clean_label(text: str) -> str:
    """XNAT's label cleaning: anything outside [A-Za-z0-9_-] becomes `_`."""
    return _NOT_LABEL.sub("_", text.strip())


def _bare_dataset(name: str, stream: IO[bytes], refused: Exception) -> pydicom.Dataset:
    """A dataset without the Part-10 preamble, as dcm4che's ``DicomInputStream`` (which XNAT's
    importer uses without a transfer syntax) takes it: it guesses the encoding from the first
    element, which must be of the file meta or identifying group (0002 or 0008), and the
    result must name its study."""
    stream.seek(0)
    head = stream.read(8)
    if len(head) < 8 or struct.unpack_from("<H", head)[0] not in (0x0002, 0x0008):
        raise UnreadableDicom(name) from refused
    stream.seek(0)
    try:
        ds = pydicom.dcmread(stream, stop_before_pixels=True, force=True)
        study = str(ds.get("StudyInstanceUID", "") or "")
    except Exception as exc:  # a guess gone wrong may fail anywhere in pydicom
        raise UnreadableDicom(name) from exc
    if not study.strip():
        raise UnreadableDicom(name) from refused
    return ds


_PREAMBLE = bytes(128)
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
DCM4CHE2_CLASS_UID = "1.2.40.0.13.1.1"  # what XNAT's importer writes as the implementation
DCM4CHE2_VERSION = "dcm4che-2.0"


def as_archived(data: bytes, header: DicomHeader) -> bytes:
    """The bytes XNAT's importer writes for a received object: a zero preamble and file meta
    information of its own (dcm4che2's implementation UID and version name, the SOP UIDs, the
    object's transfer syntax, or the guessed one when it came bare), then the data set
    (GradualDicomImporter.write re-encodes the header and copies the rest byte for byte; the
    emulator copies it all). So an archived file's size and MD5 are not the sent file's
    whenever its meta came from another writer: nearly every scanner's."""
    syntax = ""
    if data[128:132] == b"DICM":
        end, values = _file_meta(data)
        syntax = values.get(0x00020010, b"").rstrip(b"\x00 ").decode("ascii", "replace")
        body = data[end:]
    else:
        body = data
    if not syntax:
        explicit = len(body) >= 6 and body[4:6].isalpha() and body[4:6].isupper()
        syntax = _EXPLICIT_LE if explicit else _IMPLICIT_LE
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(header.sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(header.sop_uid)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID(DCM4CHE2_CLASS_UID)
    meta.ImplementationVersionName = DCM4CHE2_VERSION
    buffer = DicomBytesIO()
    pydicom.filewriter.write_file_meta_info(buffer, meta, enforce_standard=True)
    return _PREAMBLE + b"DICM" + buffer.getvalue() + body


def _file_meta(data: bytes) -> tuple[int, dict[int, bytes]]:
    """Where a Part-10 object's file meta group (explicit VR little endian, from offset 132)
    ends, and its values by tag."""
    values: dict[int, bytes] = {}
    at = 132
    while at + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, at)
        if group != 0x0002:
            break
        vr = data[at + 4 : at + 6].decode("ascii", "replace")
        if vr in EXPLICIT_VR_LENGTH_32:
            (length,) = struct.unpack_from("<I", data, at + 8)
            start = at + 12
        else:
            (length,) = struct.unpack_from("<H", data, at + 6)
            start = at + 8
        values[(group << 16) | element] = data[start : start + length]
        at = start + length
    return at, values


def read_header(name: str, data: bytes | IO[bytes]) -> DicomHeader:
    """Read the header of one Part-10 object; raise UnreadableDicom if it is not one."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    ds: pydicom.Dataset
    try:
        ds = pydicom.dcmread(stream, stop_before_pixels=True)
    except InvalidDicomError as exc:
        ds = _bare_dataset(name, stream, exc)
    except (EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableDicom(name) from exc

    def text(keyword: str) -> str:
        value = ds.get(keyword)
        return "" if value is None else str(value).strip()

    comments = " ".join(filter(None, (text("PatientComments"), text("StudyComments"))))
    header = DicomHeader(
        study_uid=text("StudyInstanceUID"),
        series_uid=text("SeriesInstanceUID"),
        sop_uid=text("SOPInstanceUID"),
        sop_class_uid=text("SOPClassUID"),
        series_number=text("SeriesNumber"),
        instance_number=text("InstanceNumber"),
        series_description=text("SeriesDescription"),
        modality=text("Modality").upper(),
        patient_name=text("PatientName"),
        patient_id=text("PatientID"),
        study_date=text("StudyDate"),
        study_time=text("StudyTime"),
        study_description=text("StudyDescription"),
        accession_number=text("AccessionNumber"),
        comments=comments,
    )
    if not (header.study_uid and header.sop_uid and header.sop_class_uid):
        raise UnreadableDicom(name)  # XNAT refuses an object without these UIDs (400)
    return header


def upload_file_name(content_type: str) -> str:
    """The name XNAT gives an in-body upload, from its Content-Type (§5.1)."""
    base = content_type.split(";", 1)[0].strip().lower()
    return {
        "application/zip": "upload.zip",
        "application/x-zip-compressed": "upload.zip",
        "application/x-tar": "upload.tar",
        "application/x-gtar": "upload.tar.gz",
        "application/x-gzip": "upload.tar.gz",
        "application/gzip": "upload.tar.gz",
        "application/dicom": "upload.dcm",
    }.get(base, "upload")


def iter_archive(path: Path, file_name: str) -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) of a zip, tar, tar.gz or tgz upload, skipping directories.

    The unpacker is chosen by `file_name`, as XNAT's DICOM-zip importer does; an unknown
    extension is tried as zip then tar.
    """
    lower = file_name.lower()
    if lower.endswith((".tar", ".tar.gz", ".tgz")):
        yield from _iter_tar(path)
    elif lower.endswith(".zip") or zipfile.is_zipfile(path):
        yield from _iter_zip(path)
    else:
        yield from _iter_tar(path)


_DATA_DESCRIPTOR = 0x08  # general purpose flag bit 3: sizes and CRC follow the data


def _iter_zip(path: Path) -> Iterator[tuple[str, bytes]]:
    """Members in order, as XNAT's ``ZipInputStream`` reads them: a *stored* member with a data
    descriptor stops the read there ("only DEFLATED entries can have EXT descriptor"; the
    members before it were already taken)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise BadArchive(str(exc)) from exc
    with archive:
        for info in archive.infolist():
            stored = info.compress_type == zipfile.ZIP_STORED
            if stored and info.flag_bits & _DATA_DESCRIPTOR:
                raise BadArchive(f"{info.filename}: only DEFLATED entries can have EXT descriptor")
            if not info.is_dir():
                yield info.filename, archive.read(info)


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()
    except tarfile.TarError as exc:
        raise BadArchive(str(exc)) from exc


def base_name(member: str) -> str:
    """DICOM-zip keeps only the member's base name (§11.8)."""
    return PurePosixPath(member.replace("\\", "/")).name


def instance_file_name(header: DicomHeader) -> str:
    """XNAT's default DICOM file namer: study-series-instance-hash(class, instance).dcm."""
    digest = hashlib.sha1(f"{header.sop_class_uid}{header.sop_uid}".encode()).hexdigest()
    return (
        f"{header.study_uid}-{header.series_number or 0}-{header.instance_number or 0}-"
        f"{int(digest[:8], 16)}.dcm"
    )


def _tagged(comments: str) -> dict[str, str]:
    """``Key: value`` assignments as XNAT's ContainedAssignmentExtractor reads them: the key
    at the start or after whitespace, `,` or `;`, the value ``[A-Za-z0-9_-]*`` followed by the
    end, whitespace, `,` or `;` (so ``Session: a.b`` assigns nothing); an empty value is none."""
    found = {}
    for key in _KEYS:
        pattern = rf"(?:|.*[\s,;]){key}\s*:\s*([\w\-]*)(?:[\s,;].*)?"
        match = re.fullmatch(pattern, comments, re.IGNORECASE | re.ASCII | re.DOTALL)
        if match and match.group(1):
            found[key] = match.group(1)
    return found


def identify(
    header: DicomHeader, naming: Naming, project_exists: Callable[[str], bool]
) -> Identity:
    """Apply the naming parameters and XNAT's default identification rules (§11.7)."""
    tags = _tagged(header.comments)
    project = naming.project
    if project is None:
        candidates = (tags.get("project", ""), header.study_description, header.accession_number)
        project = next((c for c in candidates if c and project_exists(c)), UNASSIGNED)
    subject = naming.subject or tags.get("subject") or clean_label(header.patient_name)
    session = (
        naming.session
        or tags.get("session")
        or clean_label(header.patient_id)
        or DEFAULT_SESSION_LABEL
    )
    return Identity(project=project, subject=subject, session=session)


def session_xsi_type(modalities: set[str]) -> str:
    """The session data type for a set of scan modalities."""
    for modality in _MODALITY_PRIORITY:
        if modality in modalities:
            return _SESSION_TYPES[modality]
    return "xnat:otherDicomSessionData"


def scan_xsi_type(modality: str) -> str:
    """The scan data type for one series' modality."""
    return _SCAN_TYPES.get(modality, "xnat:otherDicomScanData")


def scan_id(header: DicomHeader) -> str:
    """Scan IDs are SeriesNumber (§11.7); a series without one falls back to its UID."""
    return header.series_number or header.series_uid or "0"


def iso_date(dicom_date: str) -> str:
    """DICOM DA `YYYYMMDD` → `YYYY-MM-DD` (`""` if not a date)."""
    if len(dicom_date) >= 8 and dicom_date[:8].isdigit():
        return f"{dicom_date[:4]}-{dicom_date[4:6]}-{dicom_date[6:8]}"
    return ""


def iso_time(dicom_time: str) -> str:
    """DICOM TM `HHMMSS[.ffffff]` → `HH:MM:SS` (`""` if not a time)."""
    digits = dicom_time.split(".", 1)[0]
    if len(digits) >= 6 and digits[:6].isdigit():
        return f"{digits[:2]}:{digits[2:4]}:{digits[4:6]}"
    return ""
