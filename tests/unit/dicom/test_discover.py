"""discover / headers: which files are DICOM (by header, not extension), what is skipped with a
note, what is an error with its reason; symlinks; bounded concurrency; early exit."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from tests.unit.dicom.dicomfiles import PREAMBLE, spec, write, write_instance
from xnatsync.dicom.discover import NETWORK_READERS, default_readers, discover
from xnatsync.dicom.headers import NOT_DICOM, read_found
from xnatsync.dicom.instance import Found, Instance, Skipped, Unreadable
from xnatsync.emulator.dicom_synth import make_instance
from xnatsync.errors import UsageError


async def collect(sources: list[Path], **kwargs: object) -> list[Found]:
    async with discover(sources, **kwargs) as results:  # type: ignore[arg-type]
        return [found async for found in results]


def by_name(found: list[Found]) -> dict[str, Found]:
    return {item.path.name: item for item in found}


async def test_part10_and_preambleless_found_by_header_others_skipped(tmp_path: Path) -> None:
    one = spec(patient_name="Doe^Jane", patient_id="P 1", series=3, number=7)
    write_instance(tmp_path / "a" / "IM0001", one)  # no extension
    write_instance(tmp_path / "a" / "b" / "raw.bin", spec(number=8), preamble=False)
    write(tmp_path / "notes.dcm", b"just text, named like DICOM\n" * 10)
    # starts like a data set (group 0008) so pydicom reads it with force, but has no UIDs
    write(tmp_path / "looks.dat", b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + os.urandom(500))
    write(tmp_path / "empty", b"")

    found = by_name(await collect([tmp_path]))

    assert set(found) == {"IM0001", "raw.bin", "notes.dcm", "looks.dat", "empty"}
    first = found["IM0001"]
    assert isinstance(first, Instance)
    assert first.part10
    assert (first.study_uid, first.series_uid, first.sop_uid) == (
        one.study_uid,
        one.series_uid,
        one.sop_uid,
    )
    assert (first.series_number, first.instance_number) == ("3", "7")
    assert first.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
    assert (first.patient_name, first.patient_id, first.modality) == ("Doe^Jane", "P 1", "MR")
    assert (first.study_date, first.study_time) == ("20240102", "101500")
    assert first.size == (tmp_path / "a" / "IM0001").stat().st_size
    assert first.mtime_ns == (tmp_path / "a" / "IM0001").stat().st_mtime_ns
    assert first.tag("PatientName") == "Doe^Jane"
    raw = found["raw.bin"]
    assert isinstance(raw, Instance)
    assert not raw.part10
    assert raw.sop_uid == spec(number=8).sop_uid
    for name in ("notes.dcm", "looks.dat", "empty"):
        assert found[name] == Skipped(found[name].path, NOT_DICOM)


@pytest.mark.parametrize(
    ("cut", "preamble"),
    [
        (200, True),  # inside the file meta
        (400, True),  # inside SOPInstanceUID's value
        (700, True),  # a partial element header after the last whole element
        (732, True),  # at an element boundary, Rows read, the pixel data missing
        (400 - PREAMBLE, False),
    ],
)
async def test_header_cut_short_is_an_error(tmp_path: Path, cut: int, preamble: bool) -> None:
    data = make_instance(spec())
    data = data if preamble else data[PREAMBLE:]
    path = write(tmp_path / "cut.dcm", data[:cut])

    [found] = await collect([path])

    assert isinstance(found, Unreadable)
    assert "truncated" in found.reason


@pytest.mark.parametrize("preamble", [True, False])
@pytest.mark.parametrize("missing", [1, 20])
async def test_a_file_cut_inside_its_pixel_data_is_reported_not_sent(
    tmp_path: Path, preamble: bool, missing: int
) -> None:
    data = make_instance(spec())
    data = data if preamble else data[PREAMBLE:]
    path = write(tmp_path / "cut.dcm", data[:-missing])
    whole = write(tmp_path / "whole.dcm", data)

    found = {f.path.name: f for f in await collect([path, whole])}

    cut = found["cut.dcm"]
    assert isinstance(cut, Unreadable)
    assert "truncated inside its pixel data" in cut.reason
    assert f"{32 - missing} of 32 bytes" in cut.reason
    assert isinstance(found["whole.dcm"], Instance)


async def test_part10_without_uids_is_an_error(tmp_path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientName = "No^Uids"
    path = tmp_path / "no-uids.dcm"
    ds.save_as(path, enforce_file_format=True)

    [found] = await collect([path])

    assert found == Unreadable(path, "DICOM header has neither StudyInstanceUID nor SOPInstanceUID")


def test_os_errors_are_reasons(tmp_path: Path) -> None:
    missing = read_found(tmp_path / "gone.dcm")
    assert isinstance(missing, Unreadable)
    assert "No such file" in missing.reason
    io_error = read_found(Path("/proc/self/mem"))  # opens, then read() fails with EIO
    assert isinstance(io_error, Unreadable)
    assert "Input/output error" in io_error.reason


async def test_symlinks_skipped_unless_followed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_instance(data / "real" / "1.dcm", spec(number=1))
    (data / "link.dcm").symlink_to(data / "real" / "1.dcm")
    (data / "linkdir").symlink_to(data / "real")
    (data / "loop").symlink_to(data)
    (data / "dangling").symlink_to(tmp_path / "nowhere")

    plain = await collect([data])
    assert sorted(str(f.path.relative_to(data)) for f in plain if isinstance(f, Instance)) == [
        "real/1.dcm"
    ]
    skipped = {f.path.name for f in plain if isinstance(f, Skipped)}
    assert skipped == {"link.dcm", "linkdir", "loop", "dangling"}

    followed = await collect([data], follow_symlinks=True)
    instances = sorted(str(f.path.relative_to(data)) for f in followed if isinstance(f, Instance))
    # the folder behind "real" and "linkdir" is walked once, under whichever name came first
    assert instances in (["link.dcm", "linkdir/1.dcm"], ["link.dcm", "real/1.dcm"])
    errors = {f.path.name for f in followed if isinstance(f, Unreadable)}
    assert errors == {"dangling"}
    assert any(isinstance(f, Skipped) and "already visited" in f.reason for f in followed)


async def test_a_symlinked_source_is_skipped_too(tmp_path: Path) -> None:
    write_instance(tmp_path / "real" / "1.dcm", spec())
    (tmp_path / "src").symlink_to(tmp_path / "real")

    assert await collect([tmp_path / "src"]) == [
        Skipped(tmp_path / "src", "symlink (not followed)")
    ]


async def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nope"):
        await collect([tmp_path / "nope"])
    with pytest.raises(UsageError):
        await collect([])


async def test_many_files_through_small_buffers_each_once(tmp_path: Path) -> None:
    template = make_instance(spec())
    for i in range(600):  # more than a listing batch (512) in one folder
        write(tmp_path / "flat" / f"{i:04d}", template)
    for i in range(40):
        write(tmp_path / "deep" / str(i % 5) / f"x{i}.dcm", template)

    found = await collect([tmp_path / "flat", tmp_path / "deep"], readers=3, buffer=1)

    assert len(found) == 640
    assert all(isinstance(f, Instance) for f in found)
    assert len({f.path for f in found}) == 640


async def test_leaving_early_cancels_the_walk(tmp_path: Path) -> None:
    template = make_instance(spec())
    for i in range(200):
        write(tmp_path / f"{i}.dcm", template)

    with anyio.fail_after(10):
        async with discover([tmp_path], buffer=1) as results:
            first = await results.receive()
    assert isinstance(first, Instance)


async def test_the_callers_error_comes_out_unwrapped(tmp_path: Path) -> None:
    template = make_instance(spec())
    for i in range(50):
        write(tmp_path / f"{i}.dcm", template)

    async def consume() -> None:
        async with discover([tmp_path], buffer=1) as results:
            async for _ in results:
                raise KeyError("the caller's own")

    with pytest.raises(KeyError, match="the caller's own"):
        await consume()


def test_one_header_reader_on_local_disk_and_more_on_a_network_filesystem() -> None:
    table = (
        "22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "30 22 0:40 / /home rw,relatime - nfs4 fs1:/export/home rw,vers=4.2\n"
    )
    assert default_readers([Path("/data/dicom")], table) == 1
    both = [Path("/data/dicom"), Path("/home/ana/dicom")]
    assert default_readers(both, table) == NETWORK_READERS > 1
    assert default_readers([Path("/home/ana/dicom")], "") == 1  # no mount table: local
