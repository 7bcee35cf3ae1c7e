"""Synthetic DICOM instances for seeding the emulator and for import tests.

Pure: `make_instance` returns the bytes of one valid Part-10 file (preamble, `DICM`, file meta,
Explicit VR Little Endian) with a tiny pixel matrix; `make_zip` packs several into a zip the way a
scanner export or the XNAT upload tools do. UIDs are derived deterministically from the given
strings, so the same arguments always give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

_SOP_CLASSES = {
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
}
_UID_ROOT = "2.25."


def derived_uid(*parts: str) -> str:
    """A valid UID (2.25.<int>) that depends only on `parts`."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()[:16]
    return _UID_ROOT + str(int.from_bytes(digest, "big"))


@dataclass(frozen=True)
class InstanceSpec:
    """What one synthetic instance says about itself."""

    patient_name: str = "Doe^Jane"
    patient_id: str = "PID001"
    study_key: str = "study-1"
    series_number: int = 1
    series_description: str = "T1w"
    instance_number: int = 1
    modality: str = "MR"
    study_date: str = "20240102"
    study_time: str = "101500"
    study_description: str = ""
    patient_comments: str = ""
    accession_number: str = ""

    @property
    def study_uid(self) -> str:
        return derived_uid("study", self.study_key)

    @property
    def series_uid(self) -> str:
        return derived_uid("series", self.study_key, str(self.series_number))

    @property
    def sop_uid(self) -> str:
        return derived_uid(
            "sop", self.study_key, str(self.series_number), str(self.instance_number)
        )


def make_instance(spec: InstanceSpec) -> bytes:
    """Encode `spec` as a Part-10 DICOM file with a 4x4 16-bit image."""
    sop_class = _SOP_CLASSES.get(spec.modality, "1.2.840.10008.5.1.4.1.1.7")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(spec.sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = spec.sop_uid
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.Modality = spec.modality
    ds.StudyDate = spec.study_date
    ds.StudyTime = spec.study_time
    ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = spec.instance_number
    ds.SeriesDescription = spec.series_description
    ds.StudyDescription = spec.study_description
    ds.AccessionNumber = spec.accession_number
    if spec.patient_comments:
        ds.PatientComments = spec.patient_comments
    ds.Rows = 4
    ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(spec.instance_number % 200, spec.instance_number % 200 + 32))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_zip(members: Iterable[tuple[str, bytes]]) -> bytes:
    """Zip (name, bytes) members, DEFLATED, in the given order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def study_zip(
    base: InstanceSpec, series: Iterable[tuple[int, str, int]], *, folder: str = ""
) -> bytes:
    """A zip of one study: `series` is (SeriesNumber, SeriesDescription, instance count).

    Members are named `{folder}{series}/{instance}.dcm`, so base names repeat across series the
    way scanner exports do.
    """
    members: list[tuple[str, bytes]] = []
    for number, description, count in series:
        for instance in range(1, count + 1):
            spec = InstanceSpec(
                patient_name=base.patient_name,
                patient_id=base.patient_id,
                study_key=base.study_key,
                series_number=number,
                series_description=description,
                instance_number=instance,
                modality=base.modality,
                study_date=base.study_date,
                study_time=base.study_time,
                study_description=base.study_description,
                patient_comments=base.patient_comments,
                accession_number=base.accession_number,
            )
            members.append((f"{folder}{number}/{instance}.dcm", make_instance(spec)))
    return make_zip(members)
