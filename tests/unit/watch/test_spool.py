"""The spool on disk: scans skip temps and links, quarantine keeps a reason, moves never
overwrite."""

from __future__ import annotations

import os
from pathlib import Path

from xnatsync.watch import spool


def test_scan_finds_regular_files_only_and_skips_hidden_names(tmp_path: Path) -> None:
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b/IM1").write_bytes(b"x")
    (tmp_path / "top").write_bytes(b"yy")
    (tmp_path / ".tmp-IM2").write_bytes(b"z")
    (tmp_path / ".partial").mkdir()
    (tmp_path / ".partial/IM3").write_bytes(b"z")
    os.symlink(tmp_path / "top", tmp_path / "link")
    found = [look for batch in spool.scan(tmp_path, batch=1) for look in batch]
    assert sorted((p.relative_to(tmp_path).as_posix(), size) for p, size, _ in found) == [
        ("a/b/IM1", 1), ("top", 2)]  # fmt: skip
    assert spool.look(tmp_path / "link") is None
    assert spool.look(tmp_path / "gone") is None
    assert spool.wanted(tmp_path, tmp_path / "a/b/IM1")
    assert not spool.wanted(tmp_path, tmp_path / "a/.IM1.part")
    assert not spool.wanted(tmp_path, tmp_path.parent / "elsewhere")


def test_quarantine_keeps_the_path_and_writes_a_reason_never_overwriting(tmp_path: Path) -> None:
    root, folder = tmp_path / "spool", tmp_path / "state/quarantine"
    for content in (b"first", b"second"):
        (root / "s").mkdir(parents=True, exist_ok=True)
        (root / "s/bad.txt").write_bytes(content)
        spool.quarantine(root, folder, root / "s/bad.txt", "not DICOM")
    assert (folder / "s/bad.txt").read_bytes() == b"first"
    assert (folder / "s/bad.txt.1").read_bytes() == b"second"
    reason = (folder / "s/bad.txt.1.reason").read_text()
    assert reason.startswith("not DICOM\nfrom: ")
    assert str(root / "s/bad.txt") in reason
    assert not (root / "s/bad.txt").exists()
    assert spool.quarantine(root, folder, root / "s/bad.txt", "gone") is None


def test_move_out_and_delete(tmp_path: Path) -> None:
    root, sent = tmp_path / "spool", tmp_path / "sent"
    (root / "a").mkdir(parents=True)
    (root / "a/IM1").write_bytes(b"1")
    assert spool.move_out(root, sent, root / "a/IM1") == sent / "a/IM1"
    assert (sent / "a/IM1").read_bytes() == b"1"
    assert spool.move_out(root, sent, root / "a/IM1") is None  # already moved (a rerun)
    (root / "a/IM2").write_bytes(b"2")
    assert spool.delete(root / "a/IM2")
    assert not spool.delete(root / "a/IM2")
