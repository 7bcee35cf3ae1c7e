"""What xnatsync's client needs from an XNAT server, checked against every target.

One suite, run against the emulator in every ``make test`` and against a real XNAT when
``XNATSYNC_CONTRACT_URL`` names one (see ``conftest``): a server that fails here breaks a
promise ``pull`` relies on, and an emulator that passes where a real server fails is kinder
than XNAT. The tests discover the data they use (the first session with files), so they run
on any project.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile

import pytest

from tests.contract.conftest import Target
from xnatsync.errors import AuthError, NotFoundError
from xnatsync.model import Experiment, Level, RemoteFile
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

MD5 = re.compile("[0-9a-f]{32}")


async def first_session_with_files(
    xnat: XnatClient, project: str
) -> tuple[Experiment, list[RemoteFile]]:
    for experiment in await xnat.list_experiments(project):
        files = await xnat.list_experiment_files(project, experiment)
        if files:
            return experiment, files
    raise AssertionError(f"project {project} has no session with files to test against")


async def read(xnat: XnatClient, uri: str, *, zipped: bool = False) -> bytes:
    opener = xnat.download_zip if zipped else xnat.download
    async with opener(uri) as body:
        return b"".join([chunk async for chunk in body.chunks()])


async def test_login_lists_the_project(target: Target) -> None:
    async with target.client() as xnat:
        projects = {row.get("ID") for row in await xnat.list_projects()}
    assert target.project in projects


async def test_a_wrong_password_is_an_auth_error_at_once(target: Target) -> None:
    wrong = Credentials(target.credentials.username, "certainly-not-the-password")
    with pytest.raises(AuthError, match="rejected"):
        async with target.client(wrong):
            pass


async def test_sessions_list_with_ids_labels_and_subjects(target: Target) -> None:
    async with target.client() as xnat:
        experiments = await xnat.list_experiments(target.project)
    assert experiments
    assert len({e.id for e in experiments}) == len(experiments)
    for e in experiments:
        assert e.id
        assert e.label
        assert e.subject_id
        assert e.xsi_type


async def test_a_session_listing_gives_sizes_digests_and_unique_keys(target: Target) -> None:
    async with target.client() as xnat:
        experiment, files = await first_session_with_files(xnat, target.project)
        again = await xnat.experiment_listing(target.project, experiment)
        first = await xnat.experiment_listing(target.project, experiment)
    assert len({f.key for f in files}) == len(files)
    assert first.fingerprint == again.fingerprint  # unchanged data lists byte-identically
    for f in files:
        assert f.experiment_id == experiment.id
        assert f.uri.startswith("/")
        assert "/files/" in f.uri
        assert not f.path.startswith("/")
        assert f.size is None or f.size >= 0
        assert f.digest is None or MD5.fullmatch(f.digest)
    assert any(f.level is Level.SCAN for f in files)


async def test_a_listed_file_downloads_with_its_listed_size_and_digest(target: Target) -> None:
    async with target.client() as xnat:
        _, files = await first_session_with_files(xnat, target.project)
        f = min(files, key=lambda f: f.size or 0)
        data = await read(xnat, f.uri)
    if f.size is not None:
        assert len(data) == f.size
    if f.digest is not None:
        assert hashlib.md5(data, usedforsecurity=False).hexdigest() == f.digest


async def test_a_resource_zip_holds_every_listed_file_under_xnats_member_names(
    target: Target,
) -> None:
    async with target.client() as xnat:
        _, files = await first_session_with_files(xnat, target.project)
        resource = files[0].uri.split("/files/")[0]
        listed = [f for f in files if f.uri.startswith(resource + "/files/")]
        data = await read(xnat, resource, zipped=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    for f in listed:
        tail = f"resources/{f.resource}/files/{f.path}"
        found = [name for name in members if name == tail or name.endswith("/" + tail)]
        assert len(found) == 1, (tail, sorted(members)[:5])
        if f.digest is not None:
            assert hashlib.md5(members[found[0]], usedforsecurity=False).hexdigest() == f.digest


async def test_what_is_not_there_is_not_found(target: Target) -> None:
    async with target.client() as xnat:
        _, files = await first_session_with_files(xnat, target.project)
        missing = files[0].uri.rsplit("/", 1)[0] + "/no-such-file-xnatsync.dcm"
        with pytest.raises(NotFoundError):
            await read(xnat, missing)
        with pytest.raises(NotFoundError):
            await xnat.list_experiments("NO_SUCH_PROJECT_XNATSYNC")
