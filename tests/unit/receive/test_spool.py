"""The spool writer: whole files or nothing, replaced on repeat, never a spool made up."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from xnatsync.errors import LocalDiskError, LocalFileError, UsageError
from xnatsync.receive.spool import PART_SUFFIX, STALE_AFTER, TMP_DIR, Spool


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_store_is_one_whole_file_and_no_temp(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.prepare()
    path = spool.store("1.2.3.dcm", [b"head", b"body" * 1000])
    assert path == tmp_path / "1.2.3.dcm"
    assert path.read_bytes() == b"head" + b"body" * 1000
    assert names(tmp_path) == [TMP_DIR, "1.2.3.dcm"]
    assert names(tmp_path / TMP_DIR) == []


def test_a_repeat_replaces(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.prepare()
    spool.store("1.2.3.dcm", [b"first"])
    spool.store("1.2.3.dcm", [b"second"])
    assert names(tmp_path) == [TMP_DIR, "1.2.3.dcm"]
    assert (tmp_path / "1.2.3.dcm").read_bytes() == b"second"


def test_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    calls: list[int] = []

    def half_then_full(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data[: len(data) // 2])  # a short write first, as a kernel may

    spool = Spool(tmp_path, write=half_then_full)
    spool.prepare()
    with pytest.raises(LocalDiskError, match="No space left"):
        spool.store("1.2.3.dcm", [b"x" * 1000])
    assert names(tmp_path) == [TMP_DIR]
    assert names(tmp_path / TMP_DIR) == []


def test_an_earlier_file_survives_a_failed_replace(tmp_path: Path) -> None:
    full = False

    def write(fd: int, data: memoryview) -> int:
        if full:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        return os.write(fd, data)

    spool = Spool(tmp_path, write=write)
    spool.prepare()
    spool.store("1.2.3.dcm", [b"first"])
    full = True
    with pytest.raises(LocalDiskError):
        spool.store("1.2.3.dcm", [b"second"])
    assert (tmp_path / "1.2.3.dcm").read_bytes() == b"first"


def test_a_spool_that_went_away_is_not_made_again(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    root.mkdir()
    spool = Spool(root)
    spool.prepare()
    (root / TMP_DIR).rmdir()
    root.rmdir()  # an unmounted share: writing a new folder here would fill the wrong disk
    with pytest.raises(LocalFileError, match="No such file"):
        spool.store("1.2.3.dcm", [b"x"])
    assert not root.exists()


def test_our_temp_folder_is_made_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.prepare()
    (tmp_path / TMP_DIR).rmdir()
    spool.store("1.2.3.dcm", [b"x"])
    assert (tmp_path / "1.2.3.dcm").read_bytes() == b"x"


def test_prepare_refuses_what_is_not_a_spool(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        Spool(tmp_path / "missing").prepare()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError, match="is not a folder"):
        Spool(tmp_path / "file").prepare()

    def read_only(path: Path, flags: int, mode: int) -> int:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    with pytest.raises(LocalDiskError, match="not writable: Read-only file system"):
        Spool(tmp_path, opener=read_only).prepare()


def test_prepare_removes_only_stale_temps(tmp_path: Path) -> None:
    now = 1_000_000_000.0
    tmp = tmp_path / TMP_DIR
    tmp.mkdir()
    stale, fresh, other = (
        tmp / f"a.dcm.1.ab{PART_SUFFIX}",
        tmp / f"b.dcm.2.cd{PART_SUFFIX}",
        tmp / "x",
    )
    for path in (stale, fresh, other):
        path.write_bytes(b"")
    os.utime(stale, (now - STALE_AFTER - 1, now - STALE_AFTER - 1))
    os.utime(fresh, (now - 5, now - 5))
    os.utime(other, (now - STALE_AFTER - 1, now - STALE_AFTER - 1))
    assert Spool(tmp_path, clock=lambda: now).prepare() == 1
    assert names(tmp) == sorted([fresh.name, "x"])


@pytest.mark.parametrize("bad", ["", ".hidden", "a/b", "..", "a\0b"])
def test_store_takes_only_plain_names(tmp_path: Path, bad: str) -> None:
    spool = Spool(tmp_path)
    spool.prepare()
    with pytest.raises(ValueError, match="not a spool file name"):
        spool.store(bad, [b"x"])
