"""push.execute.Reading: the bytes of one send, hashed as read; a file that changes while it is
read is not sent as that version (the last block is never handed out)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio
import pytest

from xnatsync.errors import LocalFileError
from xnatsync.model import Level
from xnatsync.push.execute import BLOCK, Reading
from xnatsync.push.plan import LocalEntry
from xnatsync.push.tree import Target


def entry_for(path: Path, md5: str | None = None) -> LocalEntry:
    st = path.stat()
    target = Target(Level.EXPERIMENT, "S", "E", "", "", "R", path.name)
    return LocalEntry(path.name, target, st.st_size, st.st_mtime_ns, md5)


async def read_all(reading: Reading, on_block: object = None) -> bytes:
    out: list[bytes] = []
    limiter = anyio.CapacityLimiter(1)

    def progress(n: int) -> None:
        if callable(on_block):
            on_block(len(out))

    async for block in reading.blocks(progress, limiter):
        out.append(block)
    return b"".join(out)


async def test_bytes_and_md5_of_an_unchanged_file(tmp_path: Path) -> None:
    data = os.urandom(BLOCK * 2 + 123)
    (tmp_path / "f").write_bytes(data)
    reading = Reading(tmp_path / "f", entry_for(tmp_path / "f"))
    assert await read_all(reading) == data
    assert reading.digest == hashlib.md5(data).hexdigest()
    assert reading.fd is None  # closed


async def test_a_file_changed_while_read_is_cut_before_its_last_block(tmp_path: Path) -> None:
    data = os.urandom(BLOCK * 2 + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    entry = entry_for(path)
    handed: list[int] = []

    def rewrite(blocks_so_far: int) -> None:
        handed.append(blocks_so_far)
        if blocks_so_far == 0:  # after the first block went: same size, other bytes, new mtime
            path.write_bytes(os.urandom(len(data)))
            os.utime(path, ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))

    with pytest.raises(LocalFileError, match="changed while being read"):
        await read_all(Reading(path, entry), rewrite)
    assert len(handed) < 3  # the last block never left


async def test_a_file_changed_since_planning_is_not_opened_for_sending(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"planned")
    entry = entry_for(path)
    path.write_bytes(b"now longer")
    with pytest.raises(LocalFileError, match="changed since it was planned"):
        await read_all(Reading(path, entry))


async def test_the_md5_known_before_must_match(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"content")
    with pytest.raises(LocalFileError, match="changed while being read"):
        await read_all(Reading(path, entry_for(path, md5="0" * 32)))
