"""DICOM studies for the import workloads, written once per bench run (setup, never timed).

``write_studies(root, studies, series, instances, matrix)`` writes ``studies`` studies of
``series`` series of ``instances`` MR instances each, as a scanner export sorted by patient:
``root/{PatientID}/{PatientID}_{StudyDate}/{SeriesNumber}/{InstanceNumber}.dcm``. The headers
come from the emulator's synthesiser (``xnatsync.emulator.dicom_synth``, the one the tests use);
the 4 x 4 test image is replaced by a ``matrix`` x ``matrix`` 16-bit image of seeded random
bytes, so an instance has the size of a real slice (448: ~392 KiB, between a 256 x 256 MR
slice and a 512 x 512 CT one) and compresses like one (hardly). The folder names are the
labels the bench gives both sides (``--subject-label '{PatientID}' --session-label
'{PatientID}_{StudyDate}'``): the baselines read them from the path, xnatsync from the headers.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance

SUBJECT_LABEL = "{PatientID}"
SESSION_LABEL = "{PatientID}_{StudyDate}"
STUDY_DATE = "20240102"


@dataclass(frozen=True)
class Study:
    subject: str  # the subject label (PatientID)
    session: str  # the session label (PatientID_StudyDate)
    folder: Path  # its series folders, each of its instances


def instance_bytes(spec: InstanceSpec, matrix: int, rng: random.Random) -> bytes:
    """One Part-10 MR instance with a ``matrix`` x ``matrix`` 16-bit image."""
    ds = dcmread(io.BytesIO(make_instance(spec)))
    ds.Rows = ds.Columns = matrix
    ds.PixelData = rng.randbytes(matrix * matrix * 2)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_studies(
    root: Path, studies: int, series: int, instances: int, matrix: int, seed: int = 0
) -> list[Study]:
    """Write the studies under ``root`` (same arguments, same bytes); return them in order."""
    rng = random.Random(seed)
    out = []
    for number in range(1, studies + 1):
        subject = f"BENCH{number:03d}"
        session = f"{subject}_{STUDY_DATE}"
        folder = root / subject / session
        for series_number in range(1, series + 1):
            (folder / str(series_number)).mkdir(parents=True)
            for instance in range(1, instances + 1):
                spec = InstanceSpec(
                    patient_name=f"Bench^{number}",
                    patient_id=subject,
                    study_key=f"bench-{seed}-{number}",
                    series_number=series_number,
                    series_description=f"series {series_number}",
                    instance_number=instance,
                    study_date=STUDY_DATE,
                )
                data = instance_bytes(spec, matrix, rng)
                (folder / str(series_number) / f"{instance}.dcm").write_bytes(data)
        out.append(Study(subject, session, folder))
    return out
