"""The property/soak test of the reliability checklist: a seeded storm of faults on every file
request, then rerun until a run comes out clean (at most a few rounds). The mirror must then
equal the server byte for byte, and a final run must find nothing to do."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.conftest import (
    assert_invariants,
    expected_tree,
    local_files,
    make_config,
    run_pull,
)
from xnatsync.emulator.server import Emulator

# Session expiry is left out: it is a property of the whole session, not of one request, so its
# effect depends on which requests are in flight; test_faults covers it deterministically.
STORM = (
    "paths=*/files/*.dat,reset=0.08,truncate=0.05,chunked-short=0.05,corrupt=0.05,"
    "resize=0.03,503=0.08,429:0.01=0.04,login-page=0.03,stall:0.2=0.02"
)
ROUNDS = 4


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_fault_storm_converges_to_an_exact_mirror(
    synth: Emulator, tmp_path: Path, seed: int
) -> None:
    synth.faults.configure(f"seed={seed},{STORM}")
    config = make_config(synth, tmp_path, "SYNTH")
    retries = 0
    for _ in range(ROUNDS):
        summary, _ = await run_pull(config)
        retries += summary.retries
        assert_invariants(tmp_path, expected_tree(synth), completed=True)
        if summary.ok:
            break
    assert summary.ok, f"not clean after {ROUNDS} runs: {summary.failures[:3]}"
    assert retries >= 3  # the storm did strike (seeded, so the same on every run of the test)
    expected = expected_tree(synth)
    mirror = {path: (len(data), hashlib.md5(data).hexdigest()) for path, data in
              local_files(tmp_path).items()}  # fmt: skip
    assert mirror == expected
    synth.faults.clear()
    synth.requests.clear()
    summary, _ = await run_pull(config)
    assert summary.files_transferred == 0
    assert summary.files_skipped == len(expected)
    assert synth.requests.count("GET", "*/files/*.dat") == 0
