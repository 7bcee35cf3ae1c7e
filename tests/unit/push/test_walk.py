"""push.run._walk: every file of the tree with its size and mtime, temps left out, symlinks
marked, and a folder that cannot be read an error, never a silent skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnatsync.errors import LocalDiskError
from xnatsync.push.run import _walk


def test_files_symlinks_and_temps(tmp_path: Path) -> None:
    (tmp_path / "S" / "E").mkdir(parents=True)
    (tmp_path / "S" / "E" / "a.dcm").write_bytes(b"12345")
    (tmp_path / "S" / "E" / ".a.dcm.run1.0000.xnatsync-part").write_bytes(b"half")
    (tmp_path / "S" / "link").symlink_to(tmp_path / "S" / "E")
    found = {rel: (size, link) for rel, size, _mtime, link in _walk(tmp_path)}
    assert found["S/E/a.dcm"] == (5, False)
    assert found["S/link"][1] is True
    assert set(found) == {"S/E/a.dcm", "S/link"}


def test_a_folder_that_cannot_be_read_stops_the_walk(tmp_path: Path) -> None:
    with pytest.raises(LocalDiskError, match="cannot read"):
        _walk(tmp_path / "gone")
