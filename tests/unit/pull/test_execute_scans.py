"""Executor.scan_zip against a small fake server: members of several scans holding the same
names land at their own places, a member the zip lacks is fetched alone, and a server without
such zips (or with zips that hold none of the files) is asked per resource from then on."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath

from tests.fakes import Recorder, remote_file
from tests.unit.pull.test_execute import body_of, execute, states
from tests.unit.test_transfer import FakeBody
from xnatsync.errors import NotFoundError
from xnatsync.events import FileDone, FileFailed, Notice
from xnatsync.model import Level
from xnatsync.pull.diff import ChangeKind
from xnatsync.pull.execute import Executor
from xnatsync.pull.plan import Batch, Download, ScanZip

SESSION = "/data/experiments/E1"


class Server:
    """Files by URI; a zip of ``…/scans/{ids}`` or of ``…/resources/{id}`` holds their files
    under XNAT's names (scan folder ``{id}-T1``), less ``left_out``, or raises ``error``."""

    def __init__(self, files: dict[str, bytes], error: Exception | None = None) -> None:
        self.files = files
        self.error = error
        self.left_out: set[str] = set()
        self.renamed = False
        self.requests: list[str] = []

    @asynccontextmanager
    async def download(self, uri: str) -> AsyncIterator[FakeBody]:
        self.requests.append(uri)
        yield body_of(self.files[uri])

    def download_zip(self, resource: str) -> AbstractAsyncContextManager[FakeBody]:
        return self._zip(resource)

    @asynccontextmanager
    async def _zip(self, uri: str) -> AsyncIterator[FakeBody]:
        self.requests.append(uri + "?zip")
        if self.error is not None and "/resources/" not in uri:
            raise self.error
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for file_uri, data in self.files.items():
                scan = file_uri.split("/scans/", 1)[1].split("/", 1)[0]
                inside = file_uri.startswith(uri + "/") or (
                    "/resources/" not in uri and scan in uri.rsplit("/", 1)[1].split(",")
                )
                if inside and file_uri not in self.left_out:
                    path = file_uri.split("/files/", 1)[1]
                    name = "other" if self.renamed else "DICOM"
                    archive.writestr(f"sess/scans/{scan}-T1/resources/{name}/files/{path}", data)
        yield body_of(buffer.getvalue())


def group(scans: str, files: int = 3) -> tuple[ScanZip, dict[str, bytes]]:
    """A group zip of ``scans`` (each one resource of ``files`` files, the same names in
    every scan), with its parts: a resource zip per scan."""
    data_of: dict[str, bytes] = {}
    parts: list[Batch] = []
    for scan in scans.split(","):
        base = f"{SESSION}/scans/{scan}/resources/1{scan}"
        members = []
        for n in range(files):
            data = f"scan {scan} file {n}".encode() * 40
            remote = remote_file(
                level=Level.SCAN, container=scan, resource="DICOM", path=f"{n}.dcm",
                uri=f"{base}/files/{n}.dcm", size=len(data), digest=hashlib.md5(data).hexdigest(),
            )  # fmt: skip
            data_of[remote.uri] = data
            relpath = PurePosixPath("out", scan, f"{n}.dcm")
            members.append(Download(remote, relpath, ChangeKind.NEW))
        parts.append(Batch(base, tuple(members)))
    downloads = tuple(d for b in parts for d in b.downloads)
    return ScanZip(f"{SESSION}/scans/{scans}", downloads, tuple(parts)), data_of


def on_disk(tmp_path: Path, action: ScanZip, files: dict[str, bytes]) -> bool:
    return all((tmp_path / d.relpath).read_bytes() == files[d.remote.uri] for d in action.downloads)


async def run(tmp_path: Path, server: Server, *actions: ScanZip) -> tuple[Executor, Recorder]:
    return await execute(tmp_path, server, *actions)  # type: ignore[arg-type]


async def test_one_zip_brings_every_scan_each_file_to_its_own_place(tmp_path: Path) -> None:
    action, files = group("1,2,3")
    server = Server(files)
    _, events = await run(tmp_path, server, action)
    assert server.requests == [f"{SESSION}/scans/1,2,3?zip"]
    assert on_disk(tmp_path, action, files)  # same names in every scan, each where it belongs
    assert len([e for e in events.events if isinstance(e, FileDone)]) == 9
    assert set(states(tmp_path).values()) == {"done"}


async def test_a_member_missing_from_the_zip_is_fetched_alone(tmp_path: Path) -> None:
    action, files = group("1,2")
    late = action.downloads[-1].remote.uri
    server = Server(files)
    server.left_out = {late}
    _, events = await run(tmp_path, server, action)
    assert server.requests == [f"{SESSION}/scans/1,2?zip", late]
    assert on_disk(tmp_path, action, files)
    assert any(isinstance(e, Notice) and "1 of 6 files" in e.message for e in events.events)
    assert set(states(tmp_path).values()) == {"done"}


async def test_zips_holding_none_of_the_files_send_the_run_per_resource(tmp_path: Path) -> None:
    first, files = group("1,2")
    second, more = group("3,4")
    server = Server({**files, **more})
    server.renamed = True  # every member under a resource name the listing does not have
    executor, events = await run(tmp_path, server, first, second)
    assert executor.scan_zips_refused
    assert executor.zips_refused  # the resource zips of the parts hold none of theirs either
    assert server.requests[0] == f"{SESSION}/scans/1,2?zip"
    assert not any(r.startswith(f"{SESSION}/scans/3,4") for r in server.requests)
    assert on_disk(tmp_path, first, files)
    assert on_disk(tmp_path, second, more)
    assert not any(isinstance(e, FileFailed) for e in events.events)


async def test_a_server_refusing_zips_of_scans_is_asked_per_resource(tmp_path: Path) -> None:
    first, files = group("1,2")
    second, more = group("3")
    second = replace(second, uri=f"{SESSION}/scans/3,5")
    server = Server({**files, **more}, NotFoundError("no such thing", status=404))
    executor, events = await run(tmp_path, server, first, second)
    assert (executor.scan_zips_refused, executor.zips_refused) == (True, False)
    zips = [r for r in server.requests if r.endswith("?zip")]
    assert zips == [
        f"{SESSION}/scans/1,2?zip",
        f"{SESSION}/scans/1/resources/11?zip",
        f"{SESSION}/scans/2/resources/12?zip",
        f"{SESSION}/scans/3/resources/13?zip",
    ]
    assert on_disk(tmp_path, first, files)
    assert on_disk(tmp_path, second, more)
    assert any(isinstance(e, Notice) and "per resource" in e.message for e in events.events)
