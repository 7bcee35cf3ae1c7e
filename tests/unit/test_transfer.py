"""transfer.fetch against a small in-memory Source: bytes, digests, temp files, failures."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from tests.fakes import remote_file
from xnatsync.errors import BadResponseError, IntegrityError, LocalFileError, TransportError
from xnatsync.localfs import hash_file
from xnatsync.model import RemoteFile
from xnatsync.temps import PART_SUFFIX
from xnatsync.transfer import BLOCK, fetch


class FakeBody:
    def __init__(self, data: bytes, *, cut_at: int | None, content_type: str, length: int | None):
        self._data = data
        self._cut_at = cut_at
        self.content_type = content_type
        self.content_length = length

    async def chunks(self, size: int = 65536) -> AsyncIterator[bytes]:
        end = len(self._data) if self._cut_at is None else self._cut_at
        for start in range(0, end, size):
            yield self._data[start : min(start + size, end)]
        if self._cut_at is not None:
            raise TransportError("connection reset")


class FakeSource:
    """Serves one payload; optionally cuts the body or lies about its type or length."""

    def __init__(
        self,
        data: bytes,
        *,
        cut_at: int | None = None,
        content_type: str = "application/octet-stream",
        length: int | None = -1,
    ) -> None:
        self.data = data
        self.cut_at = cut_at
        self.content_type = content_type
        self.length = len(data) if length == -1 else length

    @asynccontextmanager
    async def download(self, uri: str) -> AsyncIterator[FakeBody]:
        yield FakeBody(
            self.data, cut_at=self.cut_at, content_type=self.content_type, length=self.length
        )

    def download_zip(self, resource: str) -> AbstractAsyncContextManager[FakeBody]:
        return self.download(resource)


def remote_for(data: bytes, *, digest: str | None = "auto", size: int | None = -1) -> RemoteFile:
    return remote_file(
        subject_id="S1", subject="s1", experiment_id="E1", experiment="e1", path="a/b.dcm",
        uri="/data/experiments/E1/scans/1/resources/7/files/a/b.dcm",
        size=len(data) if size == -1 else size,
        digest=hashlib.md5(data).hexdigest() if digest == "auto" else digest,
    )  # fmt: skip


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.name.endswith(PART_SUFFIX)]


@pytest.mark.parametrize("size", [0, 1, 65536, BLOCK, BLOCK * 3 + 17])
async def test_fetch_writes_verified_bytes_at_final_name(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    final = tmp_path / "x" / "y" / "b.dcm"
    seen: list[int] = []
    fetched = await fetch(FakeSource(data), remote_for(data), final, progress=seen.append)
    assert final.read_bytes() == data
    assert fetched.md5 == hashlib.md5(data).hexdigest()
    assert fetched.size == size == sum(seen)
    assert fetched.mtime_ns == final.stat().st_mtime_ns
    assert leftovers(tmp_path) == []


async def test_fetch_with_fsync_also_lands(tmp_path: Path) -> None:
    data = os.urandom(BLOCK + 5)
    final = tmp_path / "f.bin"
    await fetch(FakeSource(data), remote_for(data), final, fsync=True)
    assert final.read_bytes() == data


async def test_digest_mismatch_leaves_no_file(tmp_path: Path) -> None:
    data = os.urandom(5000)
    final = tmp_path / "f.dcm"
    with pytest.raises(IntegrityError, match="MD5"):
        await fetch(FakeSource(data), remote_for(data, digest="0" * 32), final)
    assert not final.exists()
    assert leftovers(tmp_path) == []


async def test_corruption_never_replaces_an_existing_good_file(tmp_path: Path) -> None:
    good = os.urandom(3000)
    final = tmp_path / "f.dcm"
    final.write_bytes(good)
    bad = bytearray(good)
    bad[100] ^= 0xFF
    with pytest.raises(IntegrityError):
        await fetch(FakeSource(bytes(bad)), remote_for(good), final)
    assert final.read_bytes() == good


async def test_announced_length_differing_from_listing_fails_before_streaming(
    tmp_path: Path,
) -> None:
    data = os.urandom(100)
    with pytest.raises(IntegrityError, match="announces 99 bytes"):
        await fetch(FakeSource(data, length=99), remote_for(data), tmp_path / "f")
    assert leftovers(tmp_path) == []


async def test_short_body_without_digest_is_caught_by_size(tmp_path: Path) -> None:
    data = os.urandom(1000)
    source = FakeSource(data[:600], length=None)
    with pytest.raises(IntegrityError, match="received 600 bytes"):
        await fetch(source, remote_for(data, digest=None), tmp_path / "f")


@pytest.mark.parametrize("cut", [0, 1, BLOCK - 1, BLOCK + 1, 2 * BLOCK])
async def test_cut_connection_leaves_nothing(tmp_path: Path, cut: int) -> None:
    data = os.urandom(3 * BLOCK)
    final = tmp_path / "f"
    with pytest.raises(TransportError):
        await fetch(FakeSource(data, cut_at=cut), remote_for(data), final)
    assert not final.exists()
    assert leftovers(tmp_path) == []


async def test_html_login_page_without_digest_or_size_is_refused(tmp_path: Path) -> None:
    page = b"<html><body>Login</body></html>"
    source = FakeSource(page, content_type="text/html;charset=UTF-8")
    with pytest.raises(BadResponseError, match="HTML"):
        await fetch(source, remote_for(page, digest=None, size=None), tmp_path / "f.dcm")
    assert not (tmp_path / "f.dcm").exists()


async def test_directory_at_final_name_is_a_file_error(tmp_path: Path) -> None:
    data = b"abc"
    final = tmp_path / "f"
    final.mkdir()
    (final / "inside").write_text("keep")
    with pytest.raises(LocalFileError, match="cannot write"):
        await fetch(FakeSource(data), remote_for(data), final)
    assert (final / "inside").read_text() == "keep"
    assert leftovers(tmp_path) == []


async def test_symlink_at_final_name_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f").symlink_to(outside)
    data = os.urandom(10)
    await fetch(FakeSource(data), remote_for(data), dest / "f")
    assert outside.read_text() == "precious"
    assert not (dest / "f").is_symlink()
    assert (dest / "f").read_bytes() == data


def test_hash_file(tmp_path: Path) -> None:
    data = os.urandom(70000)
    (tmp_path / "a").write_bytes(data)
    size, md5, _mtime = hash_file(tmp_path / "a")
    assert (size, md5) == (len(data), hashlib.md5(data).hexdigest())
