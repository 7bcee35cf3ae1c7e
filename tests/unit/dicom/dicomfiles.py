"""Real DICOM bytes for the dicom tests, from the emulator's synthesiser (tests may use it)."""

from __future__ import annotations

from pathlib import Path

from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance

PREAMBLE = 132  # 128-byte preamble + "DICM"


def spec(study: str = "s1", series: int = 1, number: int = 1, **fields: str) -> InstanceSpec:
    """An instance of study ``study`` (a key the UIDs derive from), series and number."""
    return InstanceSpec(study_key=study, series_number=series, instance_number=number, **fields)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_instance(path: Path, instance: InstanceSpec, *, preamble: bool = True) -> Path:
    data = make_instance(instance)
    return write(path, data if preamble else data[PREAMBLE:])
