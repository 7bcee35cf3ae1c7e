"""lock: one run per DEST, stale takeover by PID liveness, foreign hosts, release."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xnatsync.errors import LockedError
from xnatsync.lock import LOCK_NAME, DestLock, LockInfo, lock_dest, pid_alive, read_lock


def write_lock(dest: Path, host: str, pid: int, token: str = "t0") -> None:
    path = dest / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"host": host, "pid": pid, "started": "2024-01-01T00:00:00+00:00", "token": token}
    path.write_text(json.dumps(body))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_file_holds_host_pid_time_and_is_released(tmp_path: Path) -> None:
    with DestLock(tmp_path, host="h1", pid=123, clock=lambda: 0.0) as lock:
        info = read_lock(tmp_path / LOCK_NAME)
        assert info == LockInfo("h1", 123, "1970-01-01T00:00:00+00:00", lock.info.token)
    assert not (tmp_path / LOCK_NAME).exists()


def test_second_run_fails_fast_naming_the_holder(tmp_path: Path) -> None:
    with lock_dest(tmp_path), pytest.raises(LockedError) as info:
        DestLock(tmp_path).acquire()
    message = str(info.value)
    assert f"pid {os.getpid()}" in message
    assert "locked by host" in message
    assert " since " in message
    assert info.value.exit_code == 2


def test_stale_lock_on_this_host_is_taken_over(tmp_path: Path) -> None:
    write_lock(tmp_path, "h1", 4242)
    with DestLock(tmp_path, host="h1", pid=1, is_alive=lambda pid: False) as lock:
        assert read_lock(tmp_path / LOCK_NAME) == lock.info
    assert not (tmp_path / LOCK_NAME).exists()
    assert list((tmp_path / ".xnatsync").iterdir()) == []  # no stale copies left behind


def test_stale_lock_with_a_real_dead_pid(tmp_path: Path) -> None:
    pid = dead_pid()
    assert not pid_alive(pid)
    assert pid_alive(os.getpid())
    write_lock(tmp_path, DestLock(tmp_path).info.host, pid)
    with DestLock(tmp_path) as lock:
        assert read_lock(tmp_path / LOCK_NAME) == lock.info


def test_live_lock_on_this_host_is_not_taken(tmp_path: Path) -> None:
    write_lock(tmp_path, "h1", 4242)
    with pytest.raises(LockedError, match="pid 4242"):
        DestLock(tmp_path, host="h1", is_alive=lambda pid: True).acquire()
    assert read_lock(tmp_path / LOCK_NAME) == LockInfo(
        "h1", 4242, "2024-01-01T00:00:00+00:00", "t0"
    )


def test_lock_of_another_host_is_never_taken_over(tmp_path: Path) -> None:
    write_lock(tmp_path, "other-host", 4242)
    with pytest.raises(LockedError) as info:
        DestLock(tmp_path, host="h1", is_alive=lambda pid: False).acquire()
    assert "host other-host pid 4242 since 2024-01-01T00:00:00+00:00" in str(info.value)
    assert f"delete {tmp_path / LOCK_NAME}" in str(info.value)
    assert (tmp_path / LOCK_NAME).exists()


def test_unreadable_lock_is_refused_with_advice(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).parent.mkdir(parents=True)
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(LockedError, match="unreadable"):
        DestLock(tmp_path, is_alive=lambda pid: False).acquire()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    lock = DestLock(tmp_path, host="h1")
    lock.acquire()
    write_lock(tmp_path, "h2", 99, token="someone-else")  # broken by hand, taken by another run
    lock.release()
    lock.release()
    assert read_lock(tmp_path / LOCK_NAME) == LockInfo(
        "h2", 99, "2024-01-01T00:00:00+00:00", "someone-else"
    )


def test_released_on_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), lock_dest(tmp_path):
        raise RuntimeError("run failed")
    with lock_dest(tmp_path):
        pass


def test_another_process_is_refused_while_we_hold_it(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from xnatsync.errors import LockedError
        from xnatsync.lock import lock_dest
        try:
            with lock_dest(Path({str(tmp_path)!r})):
                raise SystemExit(0)
        except LockedError as exc:
            print(exc)
            raise SystemExit(exc.exit_code)
        """
    )
    with lock_dest(tmp_path):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert f"pid {os.getpid()}" in proc.stdout.decode()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0


def test_live_tags_name_every_live_run_on_dest_and_no_dead_one(tmp_path: Path) -> None:
    state = tmp_path / ".xnatsync"
    with DestLock(tmp_path) as mine, DestLock(tmp_path, name="lock.shard-1-of-2") as shard:
        dead = DestLock(tmp_path, name="lock.shard-0-of-2", pid=dead_pid())
        dead.acquire()  # and never released: a shard killed with -9
        foreign = {"host": "other-host", "pid": 7, "started": "?", "token": "f" * 32}
        (state / "lock.shard-2-of-2").write_text(json.dumps(foreign))
        (state / "lock.stale.1.abcd").write_text(json.dumps(foreign | {"token": "e" * 32}))
        (state / "lock.broken").write_text("")  # a run still writing its lock: no temps yet
        assert len({mine.tag, shard.tag, dead.tag}) == 3
        assert mine.live_tags() == {mine.tag, shard.tag, "f" * 12}


@pytest.mark.parametrize("name", ["", "locks", "lock.", "lock.stale.1", "lock.a/b", "x"])
def test_a_lock_name_that_is_not_one_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="bad lock name"):
        DestLock(tmp_path, name=name)


def test_a_lock_naming_this_process_that_it_does_not_hold_is_a_dead_run_s(
    tmp_path: Path,
) -> None:
    """A container's run is often PID 1 on a hostname that its replacement pod keeps (a
    Kubernetes Indexed Job's): a lock naming us that we did not take is a killed run's."""
    mine = DestLock(tmp_path, host="job-3")
    write_lock(tmp_path, "job-3", os.getpid(), token="killed-pod")
    with mine:  # taken over, though the PID it names is alive (it is ours)
        assert read_lock(mine.path) == mine.info
        again = DestLock(tmp_path, host="job-3")
        with pytest.raises(LockedError, match="still running"):
            again.acquire()  # but a lock this process holds is never taken from it
