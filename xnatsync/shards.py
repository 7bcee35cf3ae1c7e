"""Shards: which part of a project one of N cooperating runs takes, and the names of its files.

A sharded pull (``pull --shard K/N``) takes only the owners whose *stable hash* lands in shard
K. The hash is a function of the owner's XNAT accession ID (``XNAT_E00001``; labels can be
renamed, IDs cannot), the same in every process, host and Python version:

    shard_of(id, N) = int.from_bytes(MD5(id as UTF-8)[:8], "little") mod N      (version 1)

(rclone's ``--hash-filter K/N`` does the same with its keys.) Python's ``hash()`` is never
used: it is salted per process. An experiment is placed by its own ID, a subject's resources
by the subject's ID, a project's own resources always go to shard 0 (``owner_in``). Should the
function ever change, ``HASH_VERSION`` changes with it: it is in every shard's file names, so a
journal written under one function is never read as a shard of another.

Each shard has its own journal and lock: ``journal.shard-K-of-N.h1.db`` and
``lock.shard-K-of-N.h1`` (``Shard.stem``). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

HASH_VERSION = 1
_NAME = re.compile(r"shard-(\d+)-of-(\d+)\.h(\d+)")
MAX_SHARDS = 100_000  # Kubernetes' limit on an Indexed Job's completions; Slurm's is lower


def shard_of(accession_id: str, count: int) -> int:
    """The shard (0 ≤ shard < ``count``) of an accession ID, by hash version 1."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, not {count}")
    digest = hashlib.md5(accession_id.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "little") % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (``index`` from 0), under hash ``version``."""

    index: int
    count: int
    version: int = HASH_VERSION

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"shard count {self.count}: between 1 and {MAX_SHARDS}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: K runs from 0 to N-1")
        if self.version != HASH_VERSION:
            raise ValueError(f"hash version {self.version}: this xnatsync knows {HASH_VERSION}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` → ``Shard(K, N)``; ``ValueError`` saying what is wrong otherwise."""
        k, slash, n = text.strip().partition("/")
        if not slash or not k.isdigit() or not n.isdigit():
            raise ValueError(f"{text!r}: expected K/N with 0 <= K < N, e.g. 0/16")
        return cls(int(k), int(n))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, accession_id: str) -> bool:
        return shard_of(accession_id, self.count) == self.index

    def owner_in(self, owner: str) -> bool:
        """Does an owner (an experiment's or subject's ID; "" for a project) belong here?"""
        return self.index == 0 if not owner else self.owns(owner)

    @property
    def stem(self) -> str:
        """What names this shard's files: ``shard-K-of-N.hV``."""
        return f"shard-{self.index}-of-{self.count}.h{self.version}"

    @property
    def journal_name(self) -> str:
        return f"journal.{self.stem}.db"

    @property
    def lock_name(self) -> str:
        return f"lock.{self.stem}"


def shard_named(name: str) -> Shard | None:
    """The shard a journal or lock file name belongs to, or None (unsharded, or not ours).

    A name under a hash version this code does not know is None too: its journal is not a
    shard of any count this code can compute."""
    match = re.fullmatch(r"(?:journal\.|lock\.)" + _NAME.pattern + r"(?:\.db)?", name)
    if match is None or int(match[3]) != HASH_VERSION:
        return None
    k, n = int(match[1]), int(match[2])
    return Shard(k, n) if 0 <= k < n <= MAX_SHARDS else None
