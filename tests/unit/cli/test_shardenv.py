"""``--shard K/N`` and ``--shard auto`` (Slurm job arrays, Kubernetes Indexed Jobs), and what
a shard does to the other options (``--total-concurrency``, ``--delete``, ``--journal``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xnatsync.cli.pull import DEFAULTS, shard_settings
from xnatsync.cli.shardenv import shard_from
from xnatsync.errors import UsageError
from xnatsync.pull.options import PullOptions
from xnatsync.shards import Shard
from xnatsync.xnat.auth import Credentials


def slurm(task: int, count: int, first: int, step: int | None = 1) -> dict[str, str]:
    env = {
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_JOB_ID": "4242",
    }
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    return env


def test_explicit_k_of_n_and_no_shard() -> None:
    assert shard_from("2/5", None, {}) == Shard(2, 5)
    assert shard_from(None, None, slurm(1, 8, 1)) is None  # the environment alone shards nothing


@pytest.mark.parametrize(
    ("first", "last", "step"), [(0, 15, 1), (1, 8, 1), (0, 30, 2), (5, 41, 4), (3, 3, 1)]
)
def test_a_slurm_array_maps_onto_0_to_n_minus_1(first: int, last: int, step: int) -> None:
    tasks = range(first, last + 1, step)
    shards = [shard_from("auto", None, slurm(t, len(tasks), first, step)) for t in tasks]
    assert shards == [Shard(k, len(tasks)) for k in range(len(tasks))]


def test_slurm_without_a_step_variable_means_step_1() -> None:
    assert shard_from("auto", None, slurm(4, 8, 1, step=None)) == Shard(3, 8)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (slurm(7, 3, 1, step=1), "is not MIN"),  # --array=1,2,7: not a range
        (slurm(4, 4, 0, step=3), "is not MIN"),
        ({**slurm(1, 4, 0), "SLURM_ARRAY_TASK_COUNT": "four"}, "not a whole number"),
        ({"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT"),
        ({"JOB_COMPLETION_INDEX": "2"}, "--shards N or set XNATSYNC_SHARDS"),
        ({"JOB_COMPLETION_INDEX": "4", "XNATSYNC_SHARDS": "4"}, "K runs from 0 to N-1"),
        ({**slurm(1, 4, 0), "JOB_COMPLETION_INDEX": "1"}, "both"),
        ({}, "neither a Slurm array task"),
    ],
)
def test_auto_refuses_what_it_cannot_know(env: dict[str, str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        shard_from("auto", None, env)


def test_kubernetes_index_with_n_from_the_flag_or_the_environment() -> None:
    assert shard_from("auto", 4, {"JOB_COMPLETION_INDEX": "3"}) == Shard(3, 4)
    env = {"JOB_COMPLETION_INDEX": "0", "XNATSYNC_SHARDS": "16"}
    assert shard_from("auto", None, env) == Shard(0, 16)
    assert shard_from("auto", 8, env) == Shard(0, 8)  # the flag over the environment


def test_shards_flag_must_agree_and_needs_auto() -> None:
    with pytest.raises(UsageError, match="the Slurm array has 8 tasks"):
        shard_from("auto", 4, slurm(1, 8, 1))
    with pytest.raises(UsageError, match="only with --shard auto"):
        shard_from("1/4", 4, {})
    with pytest.raises(UsageError, match="only with --shard auto"):
        shard_from(None, 4, {})
    with pytest.raises(UsageError, match="expected K/N"):
        shard_from("1-4", None, {})


def settings(**changes: Any) -> dict[str, Any]:
    return {**DEFAULTS, **changes}


def test_total_concurrency_is_divided_among_the_shards() -> None:
    given = settings(shard="auto", total_concurrency=64)
    assert shard_settings(given, slurm(3, 16, 0)) == Shard(3, 16)
    assert given["concurrency"] == 4
    unsharded = settings(total_concurrency=12)
    assert shard_settings(unsharded, {}) is None
    assert unsharded["concurrency"] == 12
    with pytest.raises(UsageError, match="less than the 16 shards"):
        shard_settings(settings(shard="0/16", total_concurrency=8), {})
    with pytest.raises(UsageError, match="not both"):
        shard_settings(settings(shard="0/2", total_concurrency=8, concurrency=3), {})


def options(tmp_path: Path, **changes: Any) -> PullOptions:
    return PullOptions(
        "https://xnat.example.org", ("P",), tmp_path, Credentials("u", "p"), **changes
    )


def test_a_shard_keeps_its_own_journal_and_lock_and_never_deletes(tmp_path: Path) -> None:
    plain = options(tmp_path)
    assert plain.journal_file == tmp_path / ".xnatsync" / "journal.db"
    assert plain.lock_name == "lock"
    shard = options(tmp_path, shard=Shard(2, 4), journal_dir=tmp_path / "j")
    assert shard.journal_file == tmp_path / "j" / "journal.shard-2-of-4.h1.db"
    assert shard.lock_name == "lock.shard-2-of-4.h1"
    assert shard.scope().selection.shard == Shard(2, 4)
    with pytest.raises(UsageError, match="never deletes"):
        options(tmp_path, shard=Shard(0, 4), delete=True)
    with pytest.raises(UsageError, match="never deletes"):
        options(tmp_path, shard=Shard(0, 4), delete_only=True)
    with pytest.raises(UsageError, match="--journal-dir"):
        options(tmp_path, shard=Shard(0, 4), journal_path=tmp_path / "j.db")
    assert options(tmp_path, delete_only=True).delete
