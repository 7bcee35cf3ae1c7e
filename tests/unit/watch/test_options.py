"""Where the daemon keeps its state, and the places it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnatsync.errors import UsageError
from xnatsync.watch.daemon import check_places
from xnatsync.watch.options import Reloadable, WatchOptions
from xnatsync.watch.rules import AfterUpload
from xnatsync.xnat.auth import Credentials


def options(spool: Path, **changes: object) -> WatchOptions:
    return WatchOptions("https://xnat.example.org", "P", spool, Credentials("u", "p"),
                        **changes)  # type: ignore[arg-type]  # fmt: skip


def test_the_default_state_folder_is_keyed_by_the_spool(tmp_path: Path) -> None:
    home = tmp_path / "home"
    one = options(tmp_path / "a" / "spool").state_dir(home)
    two = options(tmp_path / "b" / "spool").state_dir(home)
    assert one.parent == two.parent == home / "watch"
    assert one != two
    assert one.name.startswith("spool-")
    assert options(tmp_path / "s", state=tmp_path / "x").state_dir(home) == tmp_path / "x"


def test_state_or_move_target_inside_the_spool_is_refused(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    check_places(options(spool), tmp_path / "state")
    with pytest.raises(UsageError, match="inside the spool"):
        check_places(options(spool), spool / "state")
    inside = Reloadable(after_upload=AfterUpload("move", spool / "sent"))
    with pytest.raises(UsageError, match="inside the spool"):
        check_places(options(spool, live=inside), tmp_path / "state")
    with pytest.raises(UsageError, match="not a folder"):
        check_places(options(tmp_path / "missing"), tmp_path / "state")


def test_bad_values_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="quiet-seconds"):
        Reloadable(quiet_seconds=-1)
    with pytest.raises(UsageError, match="settle-seconds"):
        options(tmp_path, settle_seconds=0)
    with pytest.raises(UsageError, match="project"):
        WatchOptions("https://xnat.example.org", "", tmp_path, Credentials("u", "p"))
