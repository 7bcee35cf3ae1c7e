"""``--shard K/N`` and ``--shard auto``: which shard this process is, from the command line or
from the engine that started it. Here, at the edge, because it reads the environment.

* Slurm job arrays: ``SLURM_ARRAY_TASK_ID`` with ``SLURM_ARRAY_TASK_COUNT``,
  ``SLURM_ARRAY_TASK_MIN`` and ``SLURM_ARRAY_TASK_STEP``. The indices need not start at 0 nor
  be consecutive: ``--array=1-8`` and ``--array=0-30:2`` both map onto shards 0..COUNT-1, as
  ``(ID - MIN) / STEP``. An array that is not such a range (``--array=1,2,7``) is refused: its
  shards could not be known from one task's variables.
* Kubernetes Indexed Jobs: ``JOB_COMPLETION_INDEX`` is K; Kubernetes does not say N, so it comes
  from ``--shards`` or ``XNATSYNC_SHARDS`` (the Job's ``completions``).
"""

from __future__ import annotations

from collections.abc import Mapping

from xnatsync.errors import UsageError
from xnatsync.shards import Shard

SLURM_ID, SLURM_COUNT = "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"
SLURM_MIN, SLURM_STEP = "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"
K8S_INDEX = "JOB_COMPLETION_INDEX"
SHARDS_ENV = "XNATSYNC_SHARDS"


def shard_from(value: str | None, shards: int | None, env: Mapping[str, str]) -> Shard | None:
    """The shard of ``--shard value`` (``K/N``, ``auto`` or None for an unsharded run);
    ``shards`` is ``--shards N``. ``UsageError`` whenever K or N cannot be known for sure."""
    if value is None:
        if shards is not None:
            raise UsageError("--shards applies only with --shard auto")
        return None
    if value.strip() != "auto":
        if shards is not None:
            raise UsageError("--shards applies only with --shard auto (K/N names N already)")
        try:
            return Shard.parse(value)
        except ValueError as exc:
            raise UsageError(f"--shard {exc}") from None
    if SLURM_ID in env and K8S_INDEX in env:
        raise UsageError(f"--shard auto: both {SLURM_ID} and {K8S_INDEX} are set; give --shard K/N")
    if SLURM_ID in env:
        return _slurm(env, shards)
    if K8S_INDEX in env:
        return _kubernetes(env, shards)
    raise UsageError(
        f"--shard auto: neither a Slurm array task ({SLURM_ID}) nor a Kubernetes Indexed Job "
        f"({K8S_INDEX}) in the environment; give --shard K/N"
    )


def _number(env: Mapping[str, str], name: str, *, default: int | None = None) -> int:
    text = env.get(name)
    if text is None and default is not None:
        return default
    if text is None or not text.strip().isdigit():
        raise UsageError(f"--shard auto: {name}={text!r} is not a whole number")
    return int(text)


def _slurm(env: Mapping[str, str], shards: int | None) -> Shard:
    task, count = _number(env, SLURM_ID), _number(env, SLURM_COUNT)
    first, step = _number(env, SLURM_MIN), _number(env, SLURM_STEP, default=1)
    if shards is not None and shards != count:
        raise UsageError(f"--shards {shards}, but the Slurm array has {count} tasks")
    offset = task - first
    if step < 1 or offset < 0 or offset % step or offset // step >= count:
        raise UsageError(
            f"--shard auto: Slurm task {task} is not MIN + i*STEP of a range of {count} tasks "
            f"(MIN {first}, STEP {step}); submit a range (--array=0-{count - 1}) or give "
            "--shard K/N"
        )
    return _shard(offset // step, count)


def _kubernetes(env: Mapping[str, str], shards: int | None) -> Shard:
    index = _number(env, K8S_INDEX)
    count = shards if shards is not None else None
    if count is None and SHARDS_ENV in env:
        count = _number(env, SHARDS_ENV)
    if count is None:
        raise UsageError(
            f"--shard auto: {K8S_INDEX}={index}, but Kubernetes does not say how many shards; "
            f"give --shards N or set {SHARDS_ENV} (the Job's completions)"
        )
    return _shard(index, count)


def _shard(index: int, count: int) -> Shard:
    try:
        return Shard(index, count)
    except ValueError as exc:
        raise UsageError(f"--shard auto: {exc}") from None
