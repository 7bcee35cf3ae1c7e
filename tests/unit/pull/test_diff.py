"""diff: the decision table, ordering rules, and properties of the merge-join."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import remote_file
from xnatsync.layout import DEFAULT_LAYOUT, parse_layout
from xnatsync.model import FileState, LocalFile, RemoteFile
from xnatsync.pull.diff import Change, ChangeKind, diff, iter_diff

MD5 = hashlib.md5(b"x").hexdigest()
OTHER = hashlib.md5(b"y").hexdigest()


def rf(path: str = "1.dcm", size: int | None = 10, digest: str | None = MD5) -> RemoteFile:
    return remote_file(path=path, size=size, digest=digest)


def downloaded(remote: RemoteFile, mtime_ns: int = 1_000, relpath: str | None = None) -> LocalFile:
    """The LocalFile a successful download of ``remote`` leaves behind."""
    size = remote.size if remote.size is not None else 3
    return LocalFile(
        key=remote.key,
        relpath=relpath if relpath is not None else str(DEFAULT_LAYOUT.relpath(remote)),
        size=size,
        mtime_ns=mtime_ns,
        md5=remote.digest or OTHER,
        remote_digest=remote.digest,
        state=FileState.DONE,
        disk_size=size,
        disk_mtime_ns=mtime_ns,
    )


def kind_of(remote: RemoteFile, local: LocalFile) -> ChangeKind:
    [change] = diff([remote], [local], DEFAULT_LAYOUT.relpath)
    return change.kind


def test_after_download_everything_is_same() -> None:
    remote = rf()
    assert kind_of(remote, downloaded(remote)) is ChangeKind.SAME


def test_only_remote_is_new_and_only_local_is_a_delete_candidate() -> None:
    a, b = rf("a.dcm"), rf("b.dcm")
    changes = diff([a], [downloaded(b)])
    assert [(c.kind, c.key) for c in changes] == [
        (ChangeKind.NEW, a.key),
        (ChangeKind.ONLY_LOCAL, b.key),
    ]
    assert changes[0].local is None
    assert changes[1].remote is None


@pytest.mark.parametrize(
    ("remote_change", "expected"),
    [
        ({"digest": OTHER}, ChangeKind.CHANGED),
        ({"size": 11}, ChangeKind.CHANGED),
        ({"size": None}, ChangeKind.SAME),  # XNAT's untrustworthy size: no verdict from it
    ],
)
def test_listing_changes(remote_change: dict[str, object], expected: ChangeKind) -> None:
    remote = rf()
    local = downloaded(remote)
    assert kind_of(replace(remote, **remote_change), local) is expected  # type: ignore[arg-type]


def test_digestless_listing_compares_size_and_remembered_digest() -> None:
    remote = rf(digest=None)
    local = downloaded(remote)
    assert kind_of(remote, local) is ChangeKind.SAME
    assert kind_of(replace(remote, size=99), local) is ChangeKind.CHANGED
    # the server listed a digest when we downloaded, now lists none: treat as changed
    with_digest = downloaded(rf())
    assert kind_of(remote, with_digest) is ChangeKind.CHANGED


@pytest.mark.parametrize(
    ("local_change", "expected"),
    [
        ({"disk_size": None, "disk_mtime_ns": None}, ChangeKind.MISSING),
        ({"disk_size": 9}, ChangeKind.VERIFY),
        ({"disk_mtime_ns": 2_000}, ChangeKind.VERIFY),
        ({"state": FileState.FAILED}, ChangeKind.RETRY),
        ({"state": FileState.PENDING}, ChangeKind.RETRY),
        ({"state": FileState.IN_PROGRESS}, ChangeKind.RETRY),
        ({"state": FileState.DELETED}, ChangeKind.NEW),
        ({"relpath": "old/place/1.dcm"}, ChangeKind.MOVED),
    ],
)
def test_local_evidence(local_change: dict[str, object], expected: ChangeKind) -> None:
    remote = rf()
    local = replace(downloaded(remote), **local_change)  # type: ignore[arg-type]
    assert kind_of(remote, local) is expected


def test_content_change_wins_over_missing_and_move() -> None:
    remote = rf()
    local = replace(downloaded(remote), disk_size=None, relpath="elsewhere")
    assert kind_of(replace(remote, digest=OTHER), local) is ChangeKind.CHANGED


def test_without_layout_there_is_no_move_verdict() -> None:
    remote = rf()
    [change] = diff([remote], [replace(downloaded(remote), relpath="old")])
    assert change.kind is ChangeKind.SAME


def test_layout_change_moves_files() -> None:
    remote = rf()
    flat = parse_layout("scan={project}/{experiment}/{scan}/{resource}/{path}")
    [change] = diff([remote], [downloaded(remote)], flat.relpath)
    assert change.kind is ChangeKind.MOVED


def test_unsafe_path_gives_no_move_verdict() -> None:
    remote = rf()
    local = downloaded(remote)
    evil = replace(remote, subject="..")
    assert kind_of(evil, replace(local, key=evil.key)) is ChangeKind.SAME


def test_nfd_listing_matches_nfc_journal_key() -> None:
    nfc = rf("café.dcm")
    nfd = rf(unicodedata.normalize("NFD", "café.dcm"))
    assert nfc.key == nfd.key
    assert kind_of(nfd, downloaded(nfc)) is ChangeKind.SAME


def test_two_spellings_of_one_key_are_one_conflict() -> None:
    nfc = rf("café.dcm")
    nfd = rf(unicodedata.normalize("NFD", "café.dcm"))
    changes = diff([nfc, nfd, rf("z.dcm")], [])
    assert [c.kind for c in changes] == [ChangeKind.CONFLICT, ChangeKind.NEW]


@pytest.mark.parametrize("side", ["remote", "local"])
def test_unsorted_input_is_a_programming_error(side: str) -> None:
    a, b = rf("a.dcm"), rf("b.dcm")
    remote, local = ([b, a], []) if side == "remote" else ([], [downloaded(b), downloaded(a)])
    with pytest.raises(ValueError, match=side):
        diff(remote, local)


def test_iter_diff_streams() -> None:
    remote = (rf(f"{i:04d}.dcm") for i in range(3))
    it = iter_diff(remote, iter(()))
    assert isinstance(next(it), Change)


# -- properties ----------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcAB01_-.é", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)
DIGESTS = st.one_of(st.none(), st.sampled_from([MD5, OTHER]))
SIZES = st.one_of(st.none(), st.integers(0, 10**9))
FILES = st.lists(st.builds(rf, NAMES, SIZES, DIGESTS), max_size=25).map(
    lambda fs: sorted({f.key: f for f in fs}.values(), key=lambda f: f.key)
)


@given(remote=FILES, local=FILES, keep=st.lists(st.booleans(), max_size=25))
def test_property_every_key_in_exactly_one_change_in_order(
    remote: list[RemoteFile], local: list[RemoteFile], keep: list[bool]
) -> None:
    locals_ = [downloaded(f) for f in local]
    changes = diff(remote, locals_, DEFAULT_LAYOUT.relpath)
    keys = [c.key for c in changes]
    assert keys == sorted({f.key for f in remote} | {f.key for f in local})
    only_remote = {f.key for f in remote} - {f.key for f in local}
    assert {c.key for c in changes if c.kind is ChangeKind.NEW} == only_remote
    for c in changes:
        assert (c.remote is None) == (c.kind is ChangeKind.ONLY_LOCAL)
        assert (c.local is None) == (c.kind is ChangeKind.NEW)


@given(remote=FILES, mtime=st.integers(0, 2**62))
def test_property_manifest_against_itself_after_download_is_all_same(
    remote: list[RemoteFile], mtime: int
) -> None:
    local = [downloaded(f, mtime) for f in remote]
    changes = diff(remote, local, DEFAULT_LAYOUT.relpath)
    assert all(c.kind is ChangeKind.SAME for c in changes)
    assert len(changes) == len(remote)


@given(remote=FILES.filter(bool), data=st.data())
def test_property_a_changed_digest_changes_only_that_file(
    remote: list[RemoteFile], data: st.DataObject
) -> None:
    local = [downloaded(f) for f in remote]
    i = data.draw(st.integers(0, len(remote) - 1))
    new_digest = OTHER if remote[i].digest == MD5 else MD5
    listed = [*remote[:i], replace(remote[i], digest=new_digest), *remote[i + 1 :]]
    kinds = {c.key: c.kind for c in diff(listed, local)}
    assert kinds.pop(remote[i].key) is ChangeKind.CHANGED
    assert set(kinds.values()) <= {ChangeKind.SAME}
