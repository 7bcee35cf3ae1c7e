"""zipfetch: spooling a resource's zip and extracting each member verified against the catalog,
against zips built here (XNAT's member layout, and hostile or damaged ones)."""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.test_transfer import FakeSource, remote_for
from xnatsync.errors import BadResponseError, IntegrityError, TransportError, UnsafePathError
from xnatsync.model import RemoteFile
from xnatsync.pull.zips import Member, Spool, extract, fetch_zip, member_name
from xnatsync.temps import PART_SUFFIX, TempNames
from xnatsync.transfer import Fetched

PREFIX = "sess1/scans/1-T1/"
RUN = TempNames("run1")


def remote(path: str, data: bytes) -> RemoteFile:
    uri = f"/data/experiments/E1/scans/1/resources/7/files/{path}"
    return replace(remote_for(data), path=path, uri=uri)


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def spool_of(tmp_path: Path, data: bytes) -> Path:
    spool = tmp_path / "spool.zip"
    spool.write_bytes(data)
    return spool


def members_for(tmp_path: Path, remotes: list[RemoteFile]) -> list[Member]:
    out = tmp_path / "out"
    return [Member(r, lambda r=r: out / r.path) for r in remotes]  # type: ignore[misc]


@pytest.mark.parametrize("fsync", [False, True], ids=["no-fsync", "fsync"])
@pytest.mark.parametrize("held", [False, True], ids=["spool-file", "in-memory"])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_members_are_matched_by_their_xnat_name_and_verified(
    tmp_path: Path, held: bool, compression: int, fsync: bool
) -> None:
    """Stored members are read whole (from memory, or by one read of the spool file);
    compressed ones are streamed: either way each is verified and lands at its place."""
    files = {"a.dcm": b"alpha", "sub/b.dcm": b"beta" * 1000, "files/c.dcm": b"gamma"}
    remotes = [remote(p, d) for p, d in files.items()]
    data = make_zip({PREFIX + member_name(r): files[r.path] for r in remotes}, compression)
    spool = data if held else spool_of(tmp_path, data)
    results = extract(spool, members_for(tmp_path, remotes), fsync=fsync, temps=RUN)
    assert all(isinstance(r, Fetched) for r in results)
    for r, got in zip(remotes, results, strict=True):
        assert isinstance(got, Fetched)
        assert (tmp_path / "out" / r.path).read_bytes() == files[r.path]
        assert got.md5 == r.digest
    assert list((tmp_path / "out").rglob(f"*{PART_SUFFIX}")) == []


def test_missing_damaged_and_unlike_members_are_reported_per_file(tmp_path: Path) -> None:
    good, changed, absent = (
        remote("good", b"good"),
        remote("changed", b"old"),
        remote("absent", b"x"),
    )
    data = make_zip({
        PREFIX + member_name(good): b"good",
        PREFIX + member_name(changed): b"new",  # the server's bytes differ from its catalog
        PREFIX + "resources/OTHER/files/absent": b"x",  # another resource's file: not ours
    })  # fmt: skip
    results = extract(
        spool_of(tmp_path, data), members_for(tmp_path, [good, changed, absent]), False, RUN
    )
    assert isinstance(results[0], Fetched)
    assert isinstance(results[1], IntegrityError)
    assert isinstance(results[2], BadResponseError)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]


@pytest.mark.parametrize("held", [False, True], ids=["spool-file", "in-memory"])
def test_a_crc_error_fails_that_member_only(tmp_path: Path, held: bool) -> None:
    one, two = remote("one", b"1" * 100), remote("two", b"2" * 100)
    data = bytearray(make_zip({member_name(one): b"1" * 100, member_name(two): b"2" * 100}))
    at = data.index(b"2" * 100)
    data[at] = ord("3")  # the bytes of "two", changed after its CRC was written
    spool = bytes(data) if held else spool_of(tmp_path, bytes(data))
    results = extract(spool, members_for(tmp_path, [one, two]), False, RUN)
    assert isinstance(results[0], Fetched)
    assert isinstance(results[1], BadResponseError)
    assert "CRC" in str(results[1])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one"]  # no temp either


def test_a_member_whose_local_header_is_damaged_fails_alone(tmp_path: Path) -> None:
    """The central directory points each member at its local header; a member whose header
    is not there (a zip spliced or cut by a proxy) is that file's error, writing nothing."""
    one, two = remote("one", b"1" * 100), remote("two", b"2" * 100)
    data = bytearray(make_zip({member_name(one): b"1" * 100, member_name(two): b"2" * 100}))
    second = data.index(b"PK\x03\x04", 1)  # the local header of "two"
    data[second : second + 4] = b"XXXX"
    results = extract(bytes(data), members_for(tmp_path, [one, two]), False, RUN)
    assert isinstance(results[0], Fetched)
    assert isinstance(results[1], BadResponseError)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one"]


def test_hostile_member_names_write_nothing_outside_the_plan(tmp_path: Path) -> None:
    mine = remote("x.dcm", b"data")
    data = make_zip({
        "../../escape.txt": b"evil",
        "/abs/resources/R/files/x.dcm/../../y": b"evil",
        PREFIX + member_name(mine): b"data",
    })  # fmt: skip
    results = extract(spool_of(tmp_path, data), members_for(tmp_path, [mine]), False, RUN)
    assert isinstance(results[0], Fetched)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out/x.dcm"]  # and the spool is gone


def test_an_unreadable_zip_raises(tmp_path: Path) -> None:
    spool = spool_of(tmp_path, b"<html>login</html>")
    with pytest.raises(BadResponseError, match="unreadable"):
        extract(spool, [], fsync=False, temps=RUN)
    assert not spool.exists()


async def test_fetch_zip_spools_and_a_cut_body_leaves_nothing(tmp_path: Path) -> None:
    data = make_zip({"resources/R/files/a": os.urandom(3 << 20)})
    spool = Spool(tmp_path, RUN)
    assert spool.path.parent == tmp_path / ".xnatsync" / "tmp"
    await fetch_zip(FakeSource(data), "/data/experiments/E1/resources/7", spool)
    assert spool.path.read_bytes() == data
    cut = Spool(tmp_path, RUN)
    assert cut.path != spool.path
    with pytest.raises(TransportError):
        await fetch_zip(FakeSource(data, cut_at=len(data) // 2), "/r", cut)
    assert not cut.path.exists()


def test_the_spool_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / ".xnatsync").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        Spool(tmp_path / "dest", RUN).write([b"PK"])
    assert list(outside.iterdir()) == []


def test_members_of_several_scans_are_told_apart_by_their_scan_folder(tmp_path: Path) -> None:
    def of_scan(scan: str, data: bytes) -> RemoteFile:
        uri = f"/data/experiments/E1/scans/{scan}/resources/7/files/1.dcm"
        return replace(remote("1.dcm", data), container=scan, uri=uri)

    one, two, three = of_scan("1", b"one" * 9), of_scan("2", b"two" * 9), of_scan("3", b"3" * 9)
    spool = spool_of(
        tmp_path,
        make_zip(
            {
                "sess1/scans/3-T1/resources/DICOM/files/1.dcm": b"not asked for",
                "sess1/scans/2/resources/DICOM/files/1.dcm": b"two" * 9,  # a scan without type
                "sess1/scans/1-T1/resources/DICOM/files/1.dcm": b"one" * 9,
            }
        ),
    )
    out = tmp_path / "out"
    members = [Member(r, lambda r=r: out / r.container) for r in (one, two, three)]  # type: ignore[misc]
    results = extract(spool, members, False, RUN)
    assert [isinstance(r, Fetched) for r in results] == [True, True, False]
    assert (out / "1").read_bytes() == b"one" * 9
    assert (out / "2").read_bytes() == b"two" * 9
    assert not (out / "3").exists()  # scan 3's member was another file: never matched


async def test_a_small_zip_is_held_in_memory_and_a_bigger_one_goes_to_disk(tmp_path: Path) -> None:
    files = {"a.dcm": b"alpha" * 100, "b.dcm": b"beta" * 100}
    remotes = [remote(p, d) for p, d in files.items()]
    data = make_zip({PREFIX + member_name(r): files[r.path] for r in remotes})
    small = Spool(tmp_path, RUN, expected=sum(len(d) for d in files.values()))
    await fetch_zip(FakeSource(data), "/data/experiments/E1/scans/1/resources/7", small)
    assert small.received() == data
    assert not small.path.parent.exists()  # no spool file, not even its folder
    results = extract(small.received(), members_for(tmp_path, remotes), fsync=False, temps=RUN)
    assert all(isinstance(r, Fetched) for r in results)
    assert (tmp_path / "out" / "b.dcm").read_bytes() == files["b.dcm"]
    big = make_zip({"resources/R/files/a": os.urandom(3 << 20)})
    unlike = Spool(tmp_path, RUN, expected=100)  # the server sends far more than listed
    await fetch_zip(FakeSource(big), "/r", unlike)
    assert unlike.received() == unlike.path
    assert unlike.path.read_bytes() == big
