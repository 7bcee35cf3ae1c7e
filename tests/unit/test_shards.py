"""The shard function (issue 11): fixed vectors, stable across processes, coverage, balance;
the names of a shard's files; a selection cut to one shard."""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys

import pytest

from xnatsync.model import Experiment
from xnatsync.pull.selection import Selection
from xnatsync.shards import HASH_VERSION, Shard, shard_named, shard_of

# Computed once by the definition (MD5 of the UTF-8 ID, first 8 bytes little-endian, mod N)
# and written down: any change of the function breaks these, whatever the process or Python.
VECTORS = [
    ("XNAT_E00001", 64, 57),
    ("XNAT_E00001", 4, 1),
    ("XNAT_E00002", 2, 0),
    ("XNAT_E00003", 3, 0),
    ("SITE_E01234", 16, 14),
    ("XNAT_S00001", 4, 3),
    ("", 3, 2),
    ("CENTRAL_E99999", 1, 0),
]


def realistic_ids(n: int = 10_000) -> list[str]:
    """Accession IDs as XNAT makes them: a site prefix, E (or S) and a zero-padded number."""
    sites = ("XNAT", "SITE", "CNDA", "BRAIN01")
    return [f"{sites[i % len(sites)]}_E{i // len(sites) + 1:05d}" for i in range(n)]


@pytest.mark.parametrize(("accession", "count", "shard"), VECTORS)
def test_fixed_vectors(accession: str, count: int, shard: int) -> None:
    assert shard_of(accession, count) == shard


def test_the_definition_written_in_the_docstring() -> None:
    digest = bytes.fromhex("f92f6fd6dc3f37aa7687ab6c3508bb5d")  # MD5("XNAT_E00001")
    assert shard_of("XNAT_E00001", 1000) == int.from_bytes(digest[:8], "little") % 1000


def test_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from xnatsync.shards import shard_of;"
        "print([shard_of(f'XNAT_E{i:05d}', 7) for i in range(200)])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # str hashes differ from this process's
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == f"{[shard_of(f'XNAT_E{i:05d}', 7) for i in range(200)]}\n"


@pytest.mark.parametrize("count", [1, 2, 3, 7, 64])
def test_every_experiment_is_in_exactly_one_shard(count: int) -> None:
    shards = [Shard(k, count) for k in range(count)]
    for accession in realistic_ids(2000):
        assert sum(s.owns(accession) for s in shards) == 1


def test_balance_at_64_shards_over_10000_realistic_ids() -> None:
    """The spread of shard sizes is within 10 % of the mean (coefficient of variation), and the
    sizes pass a chi-square test of uniformity at the 0.1 % level.

    Not "every shard within 10 % of the mean": at 156 IDs a shard, the largest of 64 shards of
    any uniform hash (a truly random split) is expected about 19 % above the mean."""
    sizes = collections.Counter(shard_of(a, 64) for a in realistic_ids())
    counts = [sizes[k] for k in range(64)]
    mean = 10_000 / 64
    assert statistics.pstdev(counts) / mean <= 0.10
    chi2 = sum((c - mean) ** 2 / mean for c in counts)
    assert chi2 < 103.4  # chi-square, 63 degrees of freedom, p = 0.001
    assert min(counts) > 0.7 * mean
    assert max(counts) < 1.3 * mean


def test_parse_and_refusals() -> None:
    assert Shard.parse("3/16") == Shard(3, 16)
    assert str(Shard.parse(" 0/1 ")) == "0/1"
    for bad in ("16/16", "-1/4", "1/0", "a/4", "3", "3/", "1.5/4"):
        with pytest.raises(ValueError, match=r"K/N|K runs from 0|between 1 and"):
            Shard.parse(bad)


def test_file_names_carry_k_n_and_the_hash_version() -> None:
    shard = Shard(3, 16)
    assert shard.journal_name == f"journal.shard-3-of-16.h{HASH_VERSION}.db"
    assert shard.lock_name == f"lock.shard-3-of-16.h{HASH_VERSION}"
    assert shard_named(shard.journal_name) == shard
    assert shard_named(shard.lock_name) == shard
    for other in ("journal.db", "lock", "journal.shard-3-of-16.h2.db", "lock.shard-16-of-16.h1"):
        assert shard_named(other) is None


def experiment(accession: str, subject: str) -> Experiment:
    return Experiment(
        accession, accession.lower(), "P", subject, subject.lower(), "xnat:mrSessionData"
    )


def test_a_selection_cut_to_shards_partitions_experiments_subjects_and_project() -> None:
    base = Selection()
    parts = [base.in_shard(Shard(k, 3)) for k in range(3)]
    assert base.in_shard(None) is base
    for i in range(300):
        exp = experiment(f"XNAT_E{i:05d}", f"XNAT_S{i:05d}")
        assert sum(p.wants_experiment(exp) for p in parts) == 1
        assert sum(p.wants_subject(exp.subject_id, "x") for p in parts) == 1
        assert parts[shard_of(exp.id, 3)].wants_experiment(exp)
    assert [p.project_resources for p in parts] == [True, False, False]
    no_project = Selection(project_resources=False).in_shard(Shard(0, 3))
    assert not no_project.project_resources
