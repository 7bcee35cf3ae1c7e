"""The engine's zip body: exact length, members intact, MD5 per member, a file touched while
read refused (push's rule), unchanged files whatever their mtime when not asked (import's)."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from xnatsync.errors import SourceChangedError
from xnatsync.zipbody import Source, ZipPlan, zip_stream


def sources(tmp_path: Path, sizes: list[int]) -> list[Source]:
    out = []
    for n, size in enumerate(sizes):
        path = tmp_path / f"f{n}.bin"
        path.write_bytes(os.urandom(size))
        st = path.stat()
        out.append(Source(path, f"sub/ü{n}.bin", st.st_size, st.st_mtime_ns))
    return out


async def test_members_and_their_md5s_are_the_files(tmp_path: Path) -> None:
    files = sources(tmp_path, [0, 10, 200_000, 70_000])
    plan = ZipPlan(files)
    digests: dict[str, str] = {}
    data = b"".join([c async for c in zip_stream(plan, block=65_535, digests=digests)])
    assert len(data) == plan.total_size
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [s.name for s in files]
        for s in files:
            assert archive.read(s.name) == s.path.read_bytes()
    assert digests == {s.name: hashlib.md5(s.path.read_bytes()).hexdigest() for s in files}


async def test_a_file_touched_while_read_is_refused_only_when_asked(tmp_path: Path) -> None:
    files = sources(tmp_path, [300_000, 10])
    first = files[0].path

    async def touched_midway(check_mtime: bool) -> int:
        sent = 0
        async for chunk in zip_stream(ZipPlan(files), block=65_535, check_mtime=check_mtime):
            if sent == 0:  # the first file is being read: same bytes, new mtime
                os.utime(first, ns=(files[0].mtime_ns + 10**9, files[0].mtime_ns + 10**9))
            sent += len(chunk)
        return sent

    assert await touched_midway(False) == ZipPlan(files).total_size
    os.utime(first, ns=(files[0].mtime_ns, files[0].mtime_ns))
    with pytest.raises(SourceChangedError, match=r"f0\.bin: changed while being read"):
        await touched_midway(True)
