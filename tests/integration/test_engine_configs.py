"""The Slurm and Kubernetes files in configs/ (issue 11), used as written: the array script's
command run with the variables Slurm sets for array tasks, its status step, the submit script
(against a stand-in ``sbatch`` that records what it was asked); the Indexed Job manifest
checked offline against a schema of ``batch/v1`` Job, and its container command run with the
``JOB_COMPLETION_INDEX`` Kubernetes gives each pod."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.integration.conftest import cli_env, run_cli
from tests.integration.test_examples import PLACEHOLDER, REPO, bash
from tests.integration.test_shards import assert_mirror, mirror_of
from xnatsync.audit import status_of_dest
from xnatsync.emulator.server import Emulator

MANIFEST = REPO / "configs" / "k8s-indexed-job.yaml"
SCHEMA = REPO / "tests" / "data" / "k8s-job-batch-v1.schema.json"


def configs_in(tmp_path: Path, url: str) -> Path:
    """A folder like the repository's: its configs/ with the emulator's URL in place."""
    work = tmp_path / "work"
    (work / "configs").mkdir(parents=True)
    for config in (REPO / "configs").iterdir():
        text = config.read_text("utf-8").replace(PLACEHOLDER, url)
        (work / "configs" / config.name).write_text(text, "utf-8")
    return work


def array_task(task: int, first: int, count: int) -> dict[str, str]:
    """What Slurm sets in the environment of one task of ``--array=FIRST-LAST``."""
    return {
        **cli_env(),
        "SLURM_JOB_ID": str(5000 + task),
        "SLURM_ARRAY_JOB_ID": "5000",
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_MAX": str(first + count - 1),
        "SLURM_ARRAY_TASK_STEP": "1",
    }


async def test_the_slurm_array_script_and_its_status_step_run_as_written(
    emu: Emulator, tmp_path: Path
) -> None:
    """An array of 1-4 (not starting at 0) makes shards 0..3; the status step exits 1 while
    one task has not run, 0 once all have, and the mirror is exact."""
    work = configs_in(tmp_path, emu.url)
    pull, status = "bash configs/slurm-pull.sh", "bash configs/slurm-status.sh"
    results = await asyncio.gather(*(bash(pull, work, array_task(t, 1, 4)) for t in (1, 2, 4)))
    for code, out in results:
        assert code == 0, out
    code, out = await bash(status, work, cli_env())
    assert code == 1, out
    assert "shard 2/4: never ran" in out
    code, out = await bash(pull, work, array_task(3, 1, 4))
    assert code == 0, out
    code, out = await bash(status, work, cli_env())
    assert code == 0, out
    assert "complete: all 4 shards finished" in out
    assert_mirror(work / "mirror", mirror_of(emu, "DEMO"))


async def test_the_submit_script_submits_the_array_then_a_dependent_status_step(
    tmp_path: Path,
) -> None:
    work = configs_in(tmp_path, "https://xnat.example.org")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    sbatch = bin_dir / "sbatch"  # answers as `sbatch --parsable` does: "jobid;cluster"
    sbatch.write_text(
        f'#!/bin/bash\necho "$*" >> {calls}\necho "$(( 4242 + $(wc -l < {calls}) ));cluster"\n'
    )
    sbatch.chmod(0o755)
    env = {**cli_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    code, out = await bash("bash configs/slurm-submit.sh", work, env)
    assert code == 0, out
    submitted = [shlex.split(line) for line in calls.read_text().splitlines()]
    assert submitted == [
        ["--parsable", "--array=0-15", "configs/slurm-pull.sh"],
        ["--parsable", "--dependency=afterany:4243", "configs/slurm-status.sh"],
    ]
    script = (REPO / "configs" / "slurm-pull.sh").read_text()
    assert re.search(r"^#SBATCH --array=0-15$", script, re.M)
    assert "--shard auto" in script


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text("utf-8"))
    return data


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_the_kubernetes_manifest_is_a_valid_indexed_job() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text("utf-8")))
    job = manifest()
    validator.validate(job)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert int(env["XNATSYNC_SHARDS"]) == spec["completions"] == spec["parallelism"]
    assert "auto" in container(job)["command"]
    # the check bites: each of these mistakes is refused
    broken: list[dict[str, Any]] = []
    changes: tuple[Callable[[dict[str, Any]], object], ...] = (
        lambda j: j["spec"].update(completionMode="Index"),
        lambda j: j["spec"].update(completion=4),  # misspelt
        lambda j: container(j).pop("name"),
        lambda j: j["spec"]["template"]["spec"].update(restartPolicy="Always"),
        lambda j: container(j)["env"][0].update(value=4),
        lambda j: j.update(apiVersion="batch/v2"),
    )
    for change in changes:
        bad = copy.deepcopy(job)
        change(bad)
        broken.append(bad)
    assert [validator.is_valid(bad) for bad in broken] == [False] * len(broken)


async def test_the_kubernetes_container_command_runs_in_each_pod(
    emu: Emulator, tmp_path: Path
) -> None:
    """Each index runs the container's command as written (the URL aside) in its workingDir,
    with the manifest's plain environment and the index Kubernetes sets; together: a mirror."""
    job = manifest()
    pod = container(job)
    command = [arg.replace(PLACEHOLDER, emu.url) for arg in pod["command"]]
    data = tmp_path / "data"  # the volume mounted at workingDir
    data.mkdir()
    assert pod["workingDir"] == pod["volumeMounts"][0]["mountPath"]
    plain = {e["name"]: e["value"] for e in pod["env"] if "value" in e}
    assert command[0] == "xnatsync"

    async def one_pod(index: int) -> tuple[int, str, str]:
        env = {**cli_env(), **plain, "JOB_COMPLETION_INDEX": str(index)}
        return await run_cli(*command[1:], env=env, cwd=data)

    results = await asyncio.gather(*(one_pod(i) for i in range(job["spec"]["completions"])))
    for code, _, err in results:
        assert code == 0, err
    assert_mirror(data / "mirror", mirror_of(emu, "DEMO"))
    said, complete = status_of_dest(data / "mirror")
    assert complete, said


async def test_without_the_shard_count_a_pod_stops_with_a_usage_error(tmp_path: Path) -> None:
    pod = container(manifest())
    env = {**cli_env(), "JOB_COMPLETION_INDEX": "0"}
    code, _, err = await run_cli(*pod["command"][1:], env=env, cwd=tmp_path)
    assert code == 2
    assert "XNATSYNC_SHARDS" in err
    assert not (tmp_path / "mirror").exists()
