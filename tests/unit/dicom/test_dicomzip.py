"""dicomzip / zipformat: the stream's length is the plan's, zipfile reads every member back with
its bytes and CRC, member names, ZIP64 (with lowered limits), and files that change."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.unit.dicom.dicomfiles import write
from xnatsync import zipformat
from xnatsync.dicom.dicomzip import ZipPlan, member_names, zip_stream
from xnatsync.dicom.instance import Instance
from xnatsync.errors import LocalFileError, SourceChangedError

SIZES = [0, 1, 100, zipformat.MAX_BLOCK - 1, zipformat.MAX_BLOCK, zipformat.MAX_BLOCK + 1, 300_001]


def instance(
    path: Path, series: str = "1", sop: str | None = None, series_uid: str = ""
) -> Instance:
    info = path.stat()
    sop_uid = f"1.2.{path.name}" if sop is None else sop
    return Instance(
        path=path, size=info.st_size, mtime_ns=info.st_mtime_ns, part10=True,
        series_number=series, sop_uid=sop_uid, series_uid=series_uid,
    )  # fmt: skip


def files(tmp_path: Path, sizes: list[int]) -> list[Instance]:
    return [
        instance(write(tmp_path / f"d{i}" / f"{i}.dcm", os.urandom(size)), series=str(i % 3))
        for i, size in enumerate(sizes)
    ]


async def stream(plan: ZipPlan, block: int = 1 << 20) -> bytes:
    return b"".join([chunk async for chunk in zip_stream(plan, block=block)])


def check_zip(data: bytes, instances: list[Instance], names: list[str]) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every member's CRC
        infos = archive.infolist()
        assert [info.filename for info in infos] == names
        for info, item in zip(infos, instances, strict=True):
            content = item.path.read_bytes()
            assert archive.read(info) == content
            assert zlib.crc32(content) == info.CRC
            assert info.file_size == item.size


@pytest.mark.parametrize("block", [1 << 20, 1000, zipformat.MAX_BLOCK * 2])
async def test_stream_length_is_total_size_and_zipfile_reads_it_back(
    tmp_path: Path, block: int
) -> None:
    instances = files(tmp_path, SIZES)
    plan = ZipPlan(instances)

    data = await stream(plan, block)

    assert len(data) == plan.total_size
    check_zip(data, instances, [m.name for m in plan.members])
    assert [m.name for m in plan.members][:3] == ["0/0.dcm", "1/1.dcm", "2/2.dcm"]


async def test_each_member_md5_is_recorded_once_its_file_was_read(tmp_path: Path) -> None:
    instances = files(tmp_path, SIZES)
    plan = ZipPlan(instances)
    digests: dict[str, str] = {}
    chunks = zip_stream(plan, block=1000, digests=digests)
    await anext(chunks)
    assert len(digests) < len(instances)  # a file's MD5 only once its last byte was read
    rest = [chunk async for chunk in chunks]
    assert rest
    assert digests == {
        m.name: hashlib.md5(m.source.path.read_bytes()).hexdigest() for m in plan.members
    }


async def test_chunks_stay_near_the_block(tmp_path: Path) -> None:
    plan = ZipPlan(files(tmp_path, [3_000_000, 10, 2_000_000]))
    sizes = [len(chunk) async for chunk in zip_stream(plan, block=100_000)]
    assert max(sizes) < 100_000 + 2 * zipformat.MAX_BLOCK  # never a whole file at once
    assert sum(sizes) == plan.total_size


async def test_an_empty_zip(tmp_path: Path) -> None:
    plan = ZipPlan([])
    data = await stream(plan)
    assert len(data) == plan.total_size == 22
    check_zip(data, [], [])


@pytest.mark.parametrize(
    ("limit", "count_limit"), [(1000, zipformat.COUNT_LIMIT), (zipformat.LIMIT, 3), (50, 1)]
)
async def test_zip64_records_with_lowered_limits(
    tmp_path: Path, limit: int, count_limit: int
) -> None:
    instances = files(tmp_path, [10, 2000, 0, 70_000, 5])
    plan = ZipPlan(instances, limit=limit, count_limit=count_limit)

    data = await stream(plan)

    assert len(data) == plan.total_size
    assert struct.pack("<I", 0x06064B50) in data  # the Zip64 end record
    check_zip(data, instances, [m.name for m in plan.members])
    if limit < zipformat.LIMIT:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            big = archive.getinfo(plan.members[3].name)
            assert big.extra[:2] == b"\x01\x00"  # sizes moved to the Zip64 extra field


def test_zip64_sizes_for_a_member_over_4_gib_without_reading() -> None:
    huge = Instance(path=Path("/nowhere/huge.dcm"), size=(1 << 32) + 7, mtime_ns=0, part10=True)
    plan = ZipPlan([huge])
    entry = plan.members[0].entry
    assert entry.zip64
    expected = (
        len(zipformat.local_header(entry))
        + huge.size
        + zipformat.BLOCK_HEADER * -(-huge.size // zipformat.MAX_BLOCK)
        + 24  # descriptor with 8-byte sizes
    )
    assert plan.cd_offset == expected
    assert plan.total_size > 1 << 32


def test_member_names_unique_and_stable_on_clashes(tmp_path: Path) -> None:
    a = instance(write(tmp_path / "a" / "IM1.dcm", b"a"), series="4", sop="1.9.1")
    b = instance(write(tmp_path / "b" / "IM1.dcm", b"b"), series="4", sop="1.9.2")
    other_series = instance(write(tmp_path / "c" / "IM1.dcm", b"c"), series="5")
    no_number = instance(write(tmp_path / "d" / "x y", b"d"), series="", series_uid="1.2.3")
    odd = instance(write(tmp_path / "e" / "back\\slash", b"e"), series="7 A")
    no_sop1 = instance(write(tmp_path / "f" / "N", b"f"), series="8", sop="")
    no_sop2 = instance(write(tmp_path / "g" / "N", b"g"), series="8", sop="")

    names = member_names([a, b, other_series, no_number, odd, no_sop1, no_sop2])

    assert names == [
        "4/IM1-1.9.1.dcm",
        "4/IM1-1.9.2.dcm",
        "5/IM1.dcm",
        "1.2.3/x y",
        "7_A/back_slash",
        "8/N-1",
        "8/N-2",
    ]
    assert member_names([b, a])[::-1] == names[:2]  # a name does not depend on the order


async def test_size_changed_before_streaming_raises_naming_it(tmp_path: Path) -> None:
    instances = files(tmp_path, [10, 20])
    instances[1].path.write_bytes(b"longer than twenty bytes")

    chunks: list[memoryview] = []
    with pytest.raises(SourceChangedError, match=r"1\.dcm: size changed") as caught:
        chunks.extend([chunk async for chunk in zip_stream(ZipPlan(instances))])
    assert chunks == []
    assert caught.value.path == instances[1].path
    assert caught.value.retryable


async def test_vanished_file_raises(tmp_path: Path) -> None:
    instances = files(tmp_path, [10])
    instances[0].path.unlink()
    with pytest.raises(SourceChangedError, match="vanished"):
        await stream(ZipPlan(instances))


@pytest.mark.parametrize("change", ["grow", "shrink"])
async def test_size_changed_while_streaming_never_sends_more_than_planned(
    tmp_path: Path, change: str
) -> None:
    instances = files(tmp_path, [200_000, 200_000])
    plan = ZipPlan(instances)
    sent = 0

    async def send() -> None:
        nonlocal sent
        async for chunk in zip_stream(plan, block=50_000):
            sent += len(chunk)
            if instances[1].path.stat().st_size == 200_000:  # after the first chunk went out
                size = 300_000 if change == "grow" else 100_000
                instances[1].path.write_bytes(os.urandom(size))

    with pytest.raises(SourceChangedError, match=r"1\.dcm: (grew|shrank)"):
        await send()
    assert 0 < sent < plan.total_size


async def test_unreadable_file_is_a_local_file_error(tmp_path: Path) -> None:
    folder = tmp_path / "dir.dcm"
    folder.mkdir()
    fake = Instance(path=folder, size=folder.stat().st_size, mtime_ns=0, part10=True)
    with pytest.raises(LocalFileError, match=r"dir\.dcm: cannot be read"):
        await stream(ZipPlan([fake]))


def test_names_of_undecodable_file_names_are_utf8(tmp_path: Path) -> None:
    raw = os.fsdecode(b"scan\xff.dcm")  # a name that is not UTF-8 (surrogate-escaped)
    item = Instance(path=tmp_path / raw, size=1, mtime_ns=0, part10=True, series_number="1")
    [name] = member_names([item])
    assert name == "1/scan_.dcm"
    ZipPlan([item])  # encodes


def test_many_clashing_names_stay_fast_and_unique(tmp_path: Path) -> None:
    items = [
        Instance(path=tmp_path / str(i) / "IM", size=1, mtime_ns=0, part10=True, series_number="1")
        for i in range(5000)
    ]
    names = member_names(items)
    assert len(set(names)) == 5000
    assert names[:2] == ["1/IM-1", "1/IM-2"]
