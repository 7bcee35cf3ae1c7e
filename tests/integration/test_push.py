"""push against the emulator: a pulled tree sent into another project comes back equal; what
is there is not sent again; what differs is a conflict unless --overwrite; the journal and the
server's own request log show what was sent."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import shutil
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from tests.integration.conftest import (
    done_in,
    local_files,
    make_config,
    run_cli,
    run_pull,
    server_json,
    server_request,
    start_cli,
    wait_for,
)
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.errors import PermissionDeniedError, ProjectNotFoundError, UsageError
from xnatsync.layout import parse_layout
from xnatsync.pull.selection import Selection
from xnatsync.push.options import PushOptions
from xnatsync.push.run import push
from xnatsync.push.tree import place
from xnatsync.report import Summary
from xnatsync.xnat.auth import Credentials

ADMIN = Credentials("admin", "admin")
UPLOADS = "*/resources/*/files/*"


def push_options(
    emu: Emulator, source: Path, project: str = "COPY", **changes: object
) -> PushOptions:
    options = PushOptions(emu.url, project, source, ADMIN)
    return replace(options, **changes)  # type: ignore[arg-type]


async def make_project(emu: Emulator, project: str) -> None:
    assert await server_request(emu, "PUT", f"/data/projects/{project}") == 200


def tree_of(dest: Path, project: str) -> dict[str, str]:
    """Files under a pulled project folder, path (below the folder) → MD5."""
    return {
        p.removeprefix(project + "/"): hashlib.md5(b).hexdigest()
        for p, b in local_files(dest).items()
        if p.startswith(project + "/")
    }


def without_assessors(tree: dict[str, str]) -> dict[str, str]:
    return {p: m for p, m in tree.items() if "/assessors/" not in p}


async def pull_without_assessors(emu: Emulator, dest: Path) -> None:
    """A pulled DEMO tree less its assessors (a new project has none to fill)."""
    await run_pull(make_config(emu, dest))
    for folder in (dest / "DEMO").glob("*/*/assessors"):
        shutil.rmtree(folder)


def puts(emu: Emulator) -> int:
    return sum(1 for r in emu.requests.matching("PUT", UPLOADS) if r.status < 300)


async def test_a_pulled_tree_pushed_into_another_project_comes_back_equal(
    emu: Emulator, tmp_path: Path
) -> None:
    await run_pull(make_config(emu, tmp_path / "a"))
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path / "a"))
    pulled = tree_of(tmp_path / "a", "DEMO")
    original = without_assessors(pulled)
    # COPY has no assessors: their files are reported, one failure each, and the rest goes
    reasons = [f["reason"] for f in summary.failures]
    assert len(reasons) == len(pulled) - len(original) > 0
    assert all("does not create one" in r for r in reasons)
    assert summary.files_transferred == len(original) > 0
    assert puts(emu) == len(original)
    await run_pull(make_config(emu, tmp_path / "b", project="COPY"))
    assert tree_of(tmp_path / "b", "COPY") == original
    for folder in (tmp_path / "a" / "DEMO").glob("*/*/assessors"):
        shutil.rmtree(folder)
    # a second push sends nothing: every file is there with its MD5
    again = await push(push_options(emu, tmp_path / "a"))
    assert (again.ok, again.files_transferred, again.files_skipped) == (True, 0, len(original))
    assert puts(emu) == len(original)
    with sqlite3.connect(tmp_path / "a" / ".xnatsync" / "push.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall())
    assert states == {"done": len(original)}


async def test_files_added_to_assessors_go_into_the_existing_assessor_by_id_or_label(
    emu: Emulator, tmp_path: Path
) -> None:
    await run_pull(make_config(emu, tmp_path / "a"))
    folder = sorted((tmp_path / "a" / "DEMO").glob("*/*/assessors/*"))[0]
    subject, session = folder.parts[-4], folder.parts[-3]
    rows = await server_json(emu, f"/data/projects/DEMO/subjects/{subject}/experiments/{session}"
                                  "/assessors?format=json")  # fmt: skip
    label = next(r["label"] for r in rows if r["ID"] == folder.name)
    added = folder / "resources" / "EXTRA" / "files" / "notes" / "qc.txt"
    added.parent.mkdir(parents=True)
    added.write_text("reviewed")
    before = puts(emu)
    summary = await push(push_options(emu, tmp_path / "a", project="DEMO"))
    assert (summary.ok, summary.files_transferred, puts(emu) - before) == (True, 1, 1)
    # a folder may name the assessor by label: the file goes into the same assessor
    renamed = folder.with_name(label)
    folder.rename(renamed)
    (renamed / "resources" / "EXTRA" / "files" / "second.txt").write_text("again")
    summary = await push(push_options(emu, tmp_path / "a", project="DEMO"))
    assert (summary.ok, summary.files_transferred, puts(emu) - before) == (True, 1, 2)
    renamed.rename(folder)
    (folder / "resources" / "EXTRA" / "files" / "second.txt").unlink()
    await run_pull(make_config(emu, tmp_path / "b"))
    back = tree_of(tmp_path / "b", "DEMO")
    assert {k: v for k, v in back.items() if not k.endswith("second.txt")} == tree_of(
        tmp_path / "a", "DEMO"
    )
    assert any(k.endswith(f"{folder.name}/resources/EXTRA/files/second.txt") for k in back)


async def test_a_changed_file_is_a_conflict_unless_overwrite(emu: Emulator, tmp_path: Path) -> None:
    await pull_without_assessors(emu, tmp_path)
    await make_project(emu, "COPY")
    assert (await push(push_options(emu, tmp_path))).ok
    victim = sorted((tmp_path / "DEMO").rglob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes() + b"changed")
    before = puts(emu)
    conflicted = await push(push_options(emu, tmp_path))
    assert (conflicted.ok, conflicted.files_failed, puts(emu)) == (False, 1, before)
    assert "--overwrite" in conflicted.failures[0]["reason"]
    replaced = await push(push_options(emu, tmp_path, overwrite=True))
    assert (replaced.ok, replaced.files_transferred, puts(emu)) == (True, 1, before + 1)
    await run_pull(make_config(emu, tmp_path / "back", project="COPY"))
    rel = victim.relative_to(tmp_path / "DEMO").as_posix()
    assert (tmp_path / "back" / "COPY" / rel).read_bytes() == victim.read_bytes()


async def test_a_missing_project_is_refused_and_nothing_is_sent(
    emu: Emulator, tmp_path: Path
) -> None:
    await run_pull(make_config(emu, tmp_path))
    with pytest.raises(ProjectNotFoundError, match="NOPE"):
        await push(push_options(emu, tmp_path, project="NOPE"))
    assert puts(emu) == 0


async def test_a_read_only_project_is_refused_and_nothing_is_sent(
    emu: Emulator, tmp_path: Path
) -> None:
    files = many_small_files(tmp_path / "src", count=3)
    emu.store.projects["DEMO"].members["user"] = "Collaborators"  # may read, not add data
    with pytest.raises(PermissionDeniedError, match="may not add data"):
        await push(push_options(emu, tmp_path / "src", project="DEMO",
                                credentials=Credentials("user", "user")))  # fmt: skip
    assert puts(emu) == 0
    emu.store.projects["DEMO"].members["user"] = "Members"  # a member's same push sends
    summary = await push(push_options(emu, tmp_path / "src", project="DEMO",
                                      credentials=Credentials("user", "user")))  # fmt: skip
    assert (summary.ok, puts(emu)) == (True, len(files))


async def test_a_path_outside_the_layout_stops_the_run_naming_it(
    emu: Emulator, tmp_path: Path
) -> None:
    await run_pull(make_config(emu, tmp_path))
    stray = tmp_path / "DEMO" / "DEMO01" / "notes.txt"
    stray.write_text("not in the layout")
    await make_project(emu, "COPY")
    with pytest.raises(UsageError, match=r"DEMO01/notes\.txt"):
        await push(push_options(emu, tmp_path))
    assert puts(emu) == 0


async def test_dry_run_plans_and_sends_nothing(emu: Emulator, tmp_path: Path) -> None:
    await pull_without_assessors(emu, tmp_path)
    await make_project(emu, "COPY")
    summary: Summary = await push(push_options(emu, tmp_path, dry_run=True))
    assert summary.files_planned > 0
    assert puts(emu) == 0
    assert not (tmp_path / ".xnatsync" / "push.db").exists()


async def test_an_error_after_the_file_was_stored_is_resolved_by_looking(
    emu: Emulator, tmp_path: Path
) -> None:
    """A 502 answered after XNAT stored the file: the retry looks at the resource, finds the
    file with its MD5, and does not send it again; a 500 before storing is sent again."""
    await pull_without_assessors(emu, tmp_path)
    await make_project(emu, "COPY")
    emu.faults.script("PUT", "*/files/1-0001.dcm", ["applied:502", "applied:502"])
    emu.faults.script("PUT", "*/files/1-0002.dcm", ["500"])
    summary = await push(push_options(emu, tmp_path))
    assert summary.ok, summary.failures
    sent = [r.path for r in emu.requests.matching("PUT", UPLOADS)]
    local = [p.name for p in (tmp_path / "DEMO").rglob("*.dcm")]
    assert local.count("1-0001.dcm") >= 2
    # each stored-then-502 file went once: its retry looked and found it
    assert sum(p.endswith("/1-0001.dcm") for p in sent) == local.count("1-0001.dcm")
    # the file refused before storing went again
    assert sum(p.endswith("/1-0002.dcm") for p in sent) == local.count("1-0002.dcm") + 1
    await run_pull(make_config(emu, tmp_path / "back", project="COPY"))
    assert tree_of(tmp_path / "back", "COPY") == tree_of(tmp_path, "DEMO")


async def test_catalog_races_lose_nothing_with_one_writer_per_resource(
    emu: Emulator, tmp_path: Path
) -> None:
    await pull_without_assessors(emu, tmp_path)
    await make_project(emu, "COPY")
    emu.faults.configure("catalog-race=1")
    summary = await push(push_options(emu, tmp_path))
    assert (summary.ok, summary.files_failed) == (True, 0)
    await run_pull(make_config(emu, tmp_path / "back", project="COPY"))
    assert tree_of(tmp_path / "back", "COPY") == tree_of(tmp_path, "DEMO")


async def test_an_expired_session_mid_push_logs_in_again_and_resends(
    emu: Emulator, tmp_path: Path
) -> None:
    await pull_without_assessors(emu, tmp_path)
    await make_project(emu, "COPY")
    emu.faults.script("PUT", "*/files/*", ["ok", "ok", "expire"])
    summary = await push(push_options(emu, tmp_path))
    assert summary.ok, summary.failures
    await run_pull(make_config(emu, tmp_path / "back", project="COPY"))
    assert tree_of(tmp_path / "back", "COPY") == tree_of(tmp_path, "DEMO")


async def test_empty_files_and_new_subject_and_project_resources(
    emu: Emulator, tmp_path: Path
) -> None:
    tree = {
        "P/resources/DOCS/files/readme.txt": b"project level\n",
        "P/NEWSUBJ/resources/FORMS/files/consent.pdf": b"%PDF subject level",
        "P/NEWSUBJ/NEWSUBJ_MR/resources/NOTES/files/empty.txt": b"",
        "P/NEWSUBJ/NEWSUBJ_MR/scans/3-T2w-FLAIR/resources/NIFTI/files/t2.nii": b"nifti" * 99,
    }
    for rel, data in tree.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path))
    assert (summary.ok, summary.files_transferred) == (True, 4), summary.failures
    await run_pull(make_config(emu, tmp_path / "back", project="COPY"))
    back = local_files(tmp_path / "back")
    # the scan's type came over as T2w-FLAIR; pull's layout writes it as T2w_FLAIR
    expected = {"COPY" + rel.removeprefix("P"): data for rel, data in tree.items()}
    assert back == {p.replace("T2w-FLAIR", "T2w_FLAIR"): d for p, d in expected.items()}


@pytest.fixture
async def wide() -> AsyncIterator[Emulator]:
    """Project BIG: 4 subjects x 1 session x 4 scans x 12 files of 16 KiB (192 files)."""
    spec = SyntheticSpec(project="BIG", subjects=4, sessions=1, scans=4, files=12, file_size=16384)
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=spec)) as emulator:
        yield emulator


SENT = re.compile(
    r"/subjects/([^/]+)/experiments/([^/]+)/scans/([^/]+)/resources/([^/]+)/files/(.+)$"
)


def sent_target(path: str) -> tuple[str, ...]:
    """(subject, session, scan, resource, path) of an upload request's path."""
    found = SENT.search(path)
    assert found is not None, path
    return found.groups()


def local_target(relpath: str) -> tuple[str, ...]:
    t = place(PurePosixPath(relpath))
    return (t.subject, t.session, t.scan, t.resource, t.path)


@pytest.mark.parametrize("mode", ["files", "zips"])
async def test_kill_during_push_then_rerun_sends_only_what_was_missing(
    wide: Emulator, tmp_path: Path, mode: str
) -> None:
    """Killed once 24 files are checked: the rerun sends no file (``--no-zip``), and no
    resource's zip (12 files a resource: zipped by default), that was checked before."""
    await run_pull(make_config(wide, tmp_path, project="BIG"))
    await make_project(wide, "COPY")
    # every upload answered a while after it is stored: 192 files, or 16 zips of 12, take
    # about 1.5 s (files) or 4 s (zips) at 4 at once, so the kill lands mid-way
    wide.faults.configure("time:put=0.03" if mode == "files" else "time:put=1")
    args = ["push", wide.url, "--project", "COPY", "--source", str(tmp_path), "--no-progress",
            "--concurrency", "4", *(["--no-zip"] if mode == "files" else [])]  # fmt: skip
    proc = await start_cli(*args)
    await wait_for(
        lambda: len(done_in(tmp_path / ".xnatsync" / "push.db")) >= 24, within=60, what="24 done"
    )
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 20) == -signal.SIGKILL
    done_at_kill = done_in(tmp_path / ".xnatsync" / "push.db")
    before = len(wide.requests.matching("PUT", UPLOADS))
    wide.faults.clear()
    code, _, err = await run_cli(*args)
    assert code == 0, err
    rerun = {sent_target(r.path) for r in wide.requests.matching("PUT", UPLOADS)[before:]}
    verified = {local_target(rel) for rel in done_at_kill}
    assert rerun  # the kill left work to do
    if mode == "files":
        assert not rerun & verified  # nothing checked on the server before the kill went again
        assert len(rerun) <= 192 - len(verified)
    else:
        assert {t[-1] for t in rerun} == {"xnatsync-upload.zip"}
        per_resource = Counter(t[:4] for t in verified)
        whole = {r for r, n in per_resource.items() if n == 12}
        assert whole  # at least two resources were checked whole before the kill
        assert not {t[:4] for t in rerun} & whole
    await run_pull(make_config(wide, tmp_path / "back", project="COPY"))
    assert tree_of(tmp_path / "back", "COPY") == tree_of(tmp_path, "BIG")


def many_small_files(source: Path, count: int = 40) -> dict[str, bytes]:
    """A session resource of ``count`` small files (odd names, sub-folders) and an empty one."""
    files = {f"sub {n % 3}/a+b ü{n}.txt": f"file {n}\n".encode() * (n + 1) for n in range(count)}
    files["empty.txt"] = b""
    base = source / "P" / "SUBJ" / "SESS" / "resources" / "MANY" / "files"
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return files


async def pulled_back(emu: Emulator, dest: Path, resource: str = "MANY") -> dict[str, bytes]:
    await run_pull(make_config(emu, dest, project="COPY"))
    base = f"COPY/SUBJ/SESS/resources/{resource}/files/"
    return {p.removeprefix(base): b for p, b in local_files(dest).items() if p.startswith(base)}


async def test_many_small_files_go_as_one_zip_the_server_unpacks(
    emu: Emulator, tmp_path: Path
) -> None:
    files = many_small_files(tmp_path / "src")
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path / "src"))
    assert (summary.ok, summary.files_transferred) == (True, len(files))
    sent = [r for r in emu.requests.matching("PUT", UPLOADS) if r.status < 300]
    # one zip of the 40 non-empty files, and the empty file alone (a zip member it could be,
    # but XNAT's empty uploads go multipart, the one way it takes them)
    assert sorted(r.path.rsplit("/", 1)[-1] for r in sent) == ["empty.txt", "xnatsync-upload.zip"]
    assert await pulled_back(emu, tmp_path / "back") == files
    with sqlite3.connect(tmp_path / "src" / ".xnatsync" / "push.db") as db:
        assert db.execute("SELECT count(*) FROM files WHERE state='done'").fetchone()[0] == len(
            files
        )
    again = await push(push_options(emu, tmp_path / "src"))
    assert (again.files_transferred, again.files_skipped, puts(emu)) == (0, len(files), 2)


async def test_a_zip_answered_502_after_it_was_unpacked_is_not_sent_again(
    emu: Emulator, tmp_path: Path
) -> None:
    files = many_small_files(tmp_path / "src")
    await make_project(emu, "COPY")
    emu.faults.script("PUT", "*/files/xnatsync-upload.zip", ["applied:502"])
    summary = await push(push_options(emu, tmp_path / "src"))
    assert (summary.ok, summary.files_transferred) == (True, len(files))
    zips = [r for r in emu.requests.matching("PUT", UPLOADS) if r.path.endswith(".zip")]
    assert [r.status for r in zips] == [502]  # looked, found all 40: nothing sent again
    assert await pulled_back(emu, tmp_path / "back") == files


async def test_no_zip_sends_each_file_alone(emu: Emulator, tmp_path: Path) -> None:
    files = many_small_files(tmp_path / "src", count=20)
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path / "src", zips=False))
    assert (summary.ok, puts(emu)) == (True, len(files))
    assert await pulled_back(emu, tmp_path / "back") == files


ONE_TEMPLATE = "{project}/{subject}/{experiment}/{container}/{resource}/{path}"


async def test_a_tree_pulled_with_a_layout_is_pushed_with_it(emu: Emulator, tmp_path: Path) -> None:
    """Pull's example layout writes scans, session and subject resources in shapes that a path
    alone cannot tell apart: the tree's pull journal tells push which each file is."""
    no_assessors = Selection(assessors=False)
    layout = parse_layout(ONE_TEMPLATE, one_project=True)
    await run_pull(make_config(emu, tmp_path / "a", layout=layout, selection=no_assessors))
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path / "a", layout=layout))
    assert (summary.ok, summary.files_failed) == (True, 0)
    # (the layout has no {type}: scans arrive untyped, so compare in the same layout)
    await run_pull(make_config(emu, tmp_path / "copy", project="COPY", layout=layout))
    assert tree_of(tmp_path / "copy", "COPY") == tree_of(tmp_path / "a", "DEMO")
    # without the journal to ask, the first ambiguous path stops the run before any send
    (tmp_path / "a" / ".xnatsync" / "journal.db").unlink()
    before = puts(emu)
    with pytest.raises(UsageError, match="no pull journal says which"):
        await push(push_options(emu, tmp_path / "a", project="DEMO", layout=layout))
    assert puts(emu) == before


async def test_names_xnat_reads_wrongly_from_a_url_go_in_a_zip(
    emu: Emulator, tmp_path: Path
) -> None:
    """XNAT decodes a file path in a URL only when it holds %20 or %2B: ``ü.txt`` sent in a URL
    as ``%C3%BC.txt`` would be stored under that name. Such files go in a zip (its member names
    are UTF-8), even alone; a name with a space goes in the URL, decoded whole."""
    files = {"ü.txt": b"u", "a%b.txt": b"pct", "c d+é.txt": b"space", "plain.txt": b"plain"}
    base = tmp_path / "src" / "P" / "SUBJ" / "SESS" / "resources" / "MANY" / "files"
    base.mkdir(parents=True)
    for name, data in files.items():
        (base / name).write_bytes(data)
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path / "src"))
    assert (summary.ok, summary.files_transferred) == (True, len(files))
    sent = sorted(r.path.rsplit("/", 1)[-1] for r in emu.requests.matching("PUT", UPLOADS))
    assert sent == ["c d+é.txt", "plain.txt", "xnatsync-upload.zip"]
    assert await pulled_back(emu, tmp_path / "back") == files


async def test_a_read_error_mid_upload_fails_that_file_and_the_rest_go_on(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "src" / "P" / "SUBJ" / "SESS" / "resources" / "BIG" / "files"
    base.mkdir(parents=True)
    files = {f"f{n}.bin": os.urandom(3 << 20) for n in range(3)}  # 3 MiB: sent one by one
    for name, data in files.items():
        (base / name).write_bytes(data)
    victim = (base / "f1.bin").stat().st_ino
    real_read, reads = os.read, Counter[int]()

    def failing_read(fd: int, size: int) -> bytes:
        if os.fstat(fd).st_ino == victim:
            reads[fd] += 1
            if reads[fd] > 1:  # the first block went: the disk fails mid-file
                raise OSError(errno.EIO, "Input/output error")
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", failing_read)
    await make_project(emu, "COPY")
    summary = await push(push_options(emu, tmp_path / "src"))
    monkeypatch.undo()
    assert (summary.files_transferred, summary.files_failed) == (2, 1)
    (failure,) = summary.failures
    assert "f1.bin" in failure["path"]
    assert "Input/output error" in failure["reason"]
    back = await pulled_back(emu, tmp_path / "back", resource="BIG")
    assert back == {k: v for k, v in files.items() if k != "f1.bin"}  # nothing of f1 stored
    with sqlite3.connect(tmp_path / "src" / ".xnatsync" / "push.db") as db:
        states = dict(db.execute("SELECT relpath, state FROM files").fetchall())
    assert sorted(states.values()) == ["done", "done", "failed"]


async def test_sessions_are_created_with_the_pulled_tree_s_own_types(
    emu: Emulator, tmp_path: Path
) -> None:
    await pull_without_assessors(emu, tmp_path)  # DEMO has MR sessions and a CT one
    await make_project(emu, "COPY")
    assert (await push(push_options(emu, tmp_path))).ok
    rows = await server_json(emu, "/data/projects/COPY/experiments?format=json")
    types = {r["label"]: r["xsiType"] for r in rows}
    assert types == {
        "DEMO01_MR1": "xnat:mrSessionData", "DEMO01_MR2": "xnat:mrSessionData",
        "DEMO02_MR1": "xnat:mrSessionData", "DEMO03_CT1": "xnat:ctSessionData",
    }  # fmt: skip
    scans = await server_json(
        emu, "/data/projects/COPY/subjects/DEMO03/experiments/DEMO03_CT1/scans?format=json"
    )
    assert {r["xsiType"] for r in scans} == {"xnat:ctScanData"}
    # a tree without its pull journal says nothing of types: --xsi-type decides
    for journal in (tmp_path / ".xnatsync").glob("journal.db*"):
        journal.unlink()
    await make_project(emu, "COPY2")
    assert (await push(push_options(emu, tmp_path, project="COPY2"))).ok
    rows = await server_json(emu, "/data/projects/COPY2/experiments?format=json")
    assert {r["xsiType"] for r in rows} == {"xnat:mrSessionData"}
