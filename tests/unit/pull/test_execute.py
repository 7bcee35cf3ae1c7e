"""Executor.batch against a small fake server: a zip that cannot be had falls back to single
downloads, a server that has no zips is not asked again, and outcomes land in the journal."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from tests.fakes import Recorder
from tests.unit.test_transfer import FakeBody, remote_for
from xnatsync.errors import NotFoundError, TransientRemoteError
from xnatsync.events import FileDone, FileFailed, Notice
from xnatsync.journal import Journal
from xnatsync.pull.diff import ChangeKind
from xnatsync.pull.execute import (
    UNPACKERS_LOCAL,
    UNPACKERS_NETWORK,
    Executor,
    Unpacking,
    unpacking,
)
from xnatsync.pull.plan import Batch, Download
from xnatsync.pull.zips import member_name
from xnatsync.retry import RetryPolicy
from xnatsync.scheduler import Attempts
from xnatsync.temps import TempNames

BASE = "/data/experiments/E1/scans/1/resources/7"


def body_of(data: bytes) -> FakeBody:
    return FakeBody(data, cut_at=None, content_type="application/octet-stream", length=len(data))


class Server:
    """Files by URI; zips built from ``zipped`` (default: all of them), or ``zip_error``."""

    def __init__(
        self,
        files: dict[str, bytes],
        zip_error: Exception | None = None,
        zipped: dict[str, bytes] | None = None,
    ) -> None:
        self.files = files
        self.zipped = files if zipped is None else zipped
        self.zip_error = zip_error
        self.zip_requests = 0
        self.file_requests = 0

    @asynccontextmanager
    async def download(self, uri: str) -> AsyncIterator[FakeBody]:
        self.file_requests += 1
        yield body_of(self.files[uri])

    def download_zip(self, resource: str) -> AbstractAsyncContextManager[FakeBody]:
        return self._zip(resource)

    @asynccontextmanager
    async def _zip(self, resource: str) -> AsyncIterator[FakeBody]:
        self.zip_requests += 1
        if self.zip_error is not None:
            raise self.zip_error
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for uri, data in self.zipped.items():
                path = uri.split("/files/", 1)[1]
                archive.writestr(f"sess/scans/1-T1/resources/DICOM/files/{path}", data)
        yield body_of(buffer.getvalue())


def batch_of(n: int) -> tuple[Batch, dict[str, bytes]]:
    files, downloads = {}, []
    for i in range(n):
        data = f"file {i}".encode() * 50
        path = f"f{i}.dcm"
        remote = replace(remote_for(data), path=path, uri=f"{BASE}/files/{path}")
        assert member_name(remote) == f"resources/DICOM/files/{path}"
        files[remote.uri] = data
        downloads.append(Download(remote, PurePosixPath("out", path), ChangeKind.NEW))
    return Batch(BASE, tuple(downloads)), files


async def execute(
    tmp_path: Path, server: Server, *batches: Batch, inline: bool = False
) -> tuple[Executor, Recorder]:
    events = Recorder()
    journal = Journal.open(tmp_path / "journal.db")
    journal.start_run("test")
    retry = RetryPolicy(attempts=2, backoff_base=0.0, backoff_max=0.0)

    async def no_sleep(_: float) -> None:
        return None

    attempts = Attempts(events, retry=retry, sleep=no_sleep)
    executor = Executor(
        source=server, journal=journal, dest=tmp_path, reporter=events, attempts=attempts,
        temps=TempNames("run1", tmp_path), inline_unpack=inline,
    )  # fmt: skip
    for batch in batches:
        await executor.run(batch)
    journal.close()
    return executor, events


def states(tmp_path: Path) -> dict[str, str]:
    with Journal.open(tmp_path / "journal.db") as journal:
        return {e.relpath: e.state.value for e in journal.iter_done("P")}


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "event-loop"])
async def test_a_zip_delivers_every_file_verified(tmp_path: Path, inline: bool) -> None:
    batch, files = batch_of(10)
    server = Server(files)
    _, events = await execute(tmp_path, server, batch, inline=inline)
    assert (server.zip_requests, server.file_requests) == (1, 0)
    done = [e for e in events.events if isinstance(e, FileDone)]
    assert len(done) == 10
    for download in batch.downloads:
        data = files[download.remote.uri]
        assert (tmp_path / download.relpath).read_bytes() == data
        assert download.remote.digest == hashlib.md5(data).hexdigest()
    assert set(states(tmp_path).values()) == {"done"}


async def test_a_transient_zip_failure_is_retried_then_files_come_one_by_one(
    tmp_path: Path,
) -> None:
    batch, files = batch_of(4)
    server = Server(files, TransientRemoteError("busy", status=503))
    _, events = await execute(tmp_path, server, batch)
    assert (server.zip_requests, server.file_requests) == (2, 4)  # two attempts, then singles
    assert all((tmp_path / d.relpath).read_bytes() == files[d.remote.uri] for d in batch.downloads)
    assert any(isinstance(e, Notice) and "one by one" in e.message for e in events.events)


async def test_a_server_without_zips_is_not_asked_again(tmp_path: Path) -> None:
    first, files = batch_of(3)
    second = Batch(BASE, first.downloads[:2])
    server = Server(files, NotFoundError("no such thing", status=404))
    executor, events = await execute(tmp_path, server, first, second)
    assert executor.zips_refused
    assert (server.zip_requests, server.file_requests) == (1, 5)
    assert not any(isinstance(e, FileFailed) for e in events.events)


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "event-loop"])
async def test_a_file_missing_from_the_zip_is_fetched_alone(tmp_path: Path, inline: bool) -> None:
    batch, files = batch_of(4)
    late = batch.downloads[-1].remote.uri
    server = Server(files, zipped={u: d for u, d in files.items() if u != late})
    _, events = await execute(tmp_path, server, batch, inline=inline)
    assert (server.zip_requests, server.file_requests) == (1, 1)
    assert all((tmp_path / d.relpath).read_bytes() == files[d.remote.uri] for d in batch.downloads)
    assert any(isinstance(e, Notice) and "1 of 4 files" in e.message for e in events.events)
    assert set(states(tmp_path).values()) == {"done"}


async def test_zips_without_the_listed_names_stop_zips_for_the_run(tmp_path: Path) -> None:
    first, files = batch_of(4)
    second = Batch(BASE, first.downloads[:2])
    renamed = {u.replace("/files/", "/files/other-"): d for u, d in files.items()}
    server = Server(files, zipped=renamed)
    executor, events = await execute(tmp_path, server, first, second)
    assert executor.zips_refused
    assert (server.zip_requests, server.file_requests) == (1, 6)
    assert all((tmp_path / d.relpath).read_bytes() == files[d.remote.uri] for d in first.downloads)
    assert any(isinstance(e, Notice) and "no more zips" in e.message for e in events.events)


def test_small_zips_unpack_on_the_loop_on_local_disk_and_in_threads_on_a_network_filesystem() -> (
    None
):
    """Unpacking small files is GIL-bound (a worker thread only hands the GIL to and fro): on
    a local disk on the event loop, or one zip at a time in a thread when every file is
    fsynced; over NFS or Lustre the creates wait on the server, so several threads."""
    table = (
        "20 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "21 20 0:50 / /lustre rw,relatime - lustre 10.0.0.1@tcp:/fs rw\n"
    )
    assert unpacking(Path("/data/mirror"), table) == Unpacking(UNPACKERS_LOCAL, inline=True)
    assert unpacking(Path("/data/mirror"), table, fsync=True) == Unpacking(1, inline=False)
    network = unpacking(Path("/lustre/ana/mirror"), table)
    assert network == Unpacking(UNPACKERS_NETWORK, inline=False)
    assert network.threads > 1
    assert unpacking(Path("/lustre/ana/mirror"), "").inline  # no mount table: local
