"""What discovery says about one file: an ``Instance``, a ``Skipped`` note or an ``Unreadable``.

Pure values. An ``Instance`` keeps only the header fields the import needs (``TAGS``), as text
with DICOM padding removed (``""`` when the tag is absent), plus the file's path, size and
mtime at discovery, so a study of 100,000 instances costs a few hundred bytes each.

Invariants:
* ``TAGS`` maps each DICOM keyword we read to its ``Instance`` attribute; label templates may
  name exactly these keywords (``labels``), and ``Instance.tag`` answers for them.
* ``size`` and ``mtime_ns`` are the file's at header-read time: the zip is planned from
  ``size`` and refuses to send a file whose size changed since (``dicomzip``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

# DICOM keyword → Instance attribute. SOPClassUID is read because XNAT refuses an object
# without it (or without SOPInstanceUID) with a 400 that fails the whole zip (``studies``).
TAGS = MappingProxyType(
    {
        "StudyInstanceUID": "study_uid",
        "SeriesInstanceUID": "series_uid",
        "SeriesNumber": "series_number",
        "SOPInstanceUID": "sop_uid",
        "SOPClassUID": "sop_class_uid",
        "InstanceNumber": "instance_number",
        "PatientID": "patient_id",
        "PatientName": "patient_name",
        "StudyDate": "study_date",
        "StudyTime": "study_time",
        "StudyDescription": "study_description",
        "AccessionNumber": "accession_number",
        "Modality": "modality",
        "SeriesDescription": "series_description",
        "PatientComments": "patient_comments",
        "StudyComments": "study_comments",
    }
)


@dataclass(frozen=True, slots=True)
class Instance:
    """One DICOM file found by its header. Tag values are stripped text, ``""`` if absent."""

    path: Path
    size: int
    mtime_ns: int
    part10: bool  # the file has the 128-byte preamble and ``DICM``; else found by its tags
    study_uid: str = ""
    series_uid: str = ""
    series_number: str = ""
    sop_uid: str = ""
    sop_class_uid: str = ""
    instance_number: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    modality: str = ""
    series_description: str = ""
    patient_comments: str = ""  # XNAT's default naming reads "Subject:"/"Session:" here
    study_comments: str = ""

    def tag(self, keyword: str) -> str:
        """The value of a DICOM keyword of ``TAGS`` (KeyError for any other keyword)."""
        return str(getattr(self, TAGS[keyword]))


@dataclass(frozen=True, slots=True)
class Skipped:
    """A path that is not DICOM, or not followed (a symlink, a FIFO): a note, not an error."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A path that could not be read (permission, I/O error, a header cut short): an error."""

    path: Path
    reason: str


Found = Instance | Skipped | Unreadable
