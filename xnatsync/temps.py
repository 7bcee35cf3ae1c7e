"""Temp files of a run: named by the run, recorded by folder, swept when their run is dead.

Several runs may work on one DEST at once (shards, each with its own lock), so a temp's name
says which run made it: ``.{name}.{tag}.{random}.xnatsync-part``, where ``tag`` comes from the
run's lock. A run is live while its lock file exists and is not stale (``lock.live_tags``).

Invariants:

* Before a run makes its first temp in a folder, it appends that folder (relative to DEST) to
  its ledger ``DEST/.xnatsync/runs/{tag}.dirs``; so a run killed at any moment has listed
  every folder holding its temps, and the next start removes them without walking the tree.
  A run that ends (well or not) removed its own temps, then removes its ledger.
* The sweep removes only files ending in ``.xnatsync-part`` whose tag is not live, only in
  folders under DEST reached without following a symlink; never a live run's temps.
* Zip spools live in ``DEST/.xnatsync/tmp`` under the same rule, and that folder is swept at
  every start. The whole tree is walked too when the last run recorded in the journal did not
  end (a safety net for temps left by versions without a ledger).

Blocking filesystem I/O: call from worker threads.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import suppress
from pathlib import Path, PurePosixPath

from xnatsync.errors import UnsafePathError
from xnatsync.localfs import os_error, resolve_under

PART_SUFFIX = ".xnatsync-part"
TMP_DIR = PurePosixPath(".xnatsync/tmp")  # zip spools
RUNS_DIR = PurePosixPath(".xnatsync/runs")  # one ledger of temp folders per live or dead run
_LEDGER = ".dirs"


def part_tag(name: str) -> str | None:
    """The run tag in a temp file's name, or None if it is not a temp of ours."""
    if not name.endswith(PART_SUFFIX):
        return None
    pieces = name[: -len(PART_SUFFIX)].rsplit(".", 2)
    return pieces[1] if len(pieces) == 3 else ""


class TempNames:
    """Temp names for one run, and the ledger of the folders they are made in.

    ``beside`` runs in worker threads, several at once: the ledger is appended under a lock,
    once per folder, before the name is handed out (so before the file can exist)."""

    def __init__(self, tag: str, dest: Path | None = None) -> None:
        if not tag or "." in tag or "/" in tag:
            raise ValueError(f"bad run tag {tag!r}")
        self.tag = tag
        self.dest = dest
        self.ledger = None if dest is None else dest.joinpath(*RUNS_DIR.parts, tag + _LEDGER)
        self._folders: set[Path] = set()
        self._lock = threading.Lock()
        # unique per instance (random) and per name (a serial): no entropy read per temp file
        self._salt = secrets.token_hex(4)
        self._serial = itertools.count()

    def beside(self, final: Path, *, record: bool = True) -> Path:
        """A name for a temp of ``final``, in its folder (same filesystem: rename is atomic).

        ``record=False`` skips the ledger (no I/O): for the spool folder, swept at every start.
        """
        if record and self.ledger is not None and final.parent not in self._folders:
            self._note(final.parent)
        stem = final.name[:120]
        unique = f"{self._salt}{next(self._serial):x}"  # next() on a count is atomic
        return final.with_name(f".{stem}.{self.tag}.{unique}{PART_SUFFIX}")

    def close(self) -> None:
        """The run is over and its temps are gone: drop its ledger."""
        if self.ledger is not None:
            with suppress(FileNotFoundError):
                os.unlink(self.ledger)

    def note(self, folders: Iterable[Path]) -> None:
        """Record these folders in the ledger at once (one append for all that are new), so
        that temps made in them later cost no ledger I/O (a zip's members: one append)."""
        if self.ledger is not None:
            self._note(*folders)

    def _note(self, *folders: Path) -> None:
        assert self.ledger is not None
        assert self.dest is not None
        with self._lock:
            new = list(dict.fromkeys(f for f in folders if f not in self._folders))
            if not new:
                return
            text = "".join(json.dumps(f.relative_to(self.dest).as_posix()) + "\n" for f in new)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                try:
                    fd = os.open(self.ledger, flags, 0o644)
                except FileNotFoundError:
                    self.ledger.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.ledger, flags, 0o644)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                raise os_error(exc, self.ledger) from exc
            self._folders.update(new)


def sweep(dest: Path, live: Collection[str], *, walk: bool = False) -> int:
    """Remove the temps of runs that are not live; return how many files were removed.

    Reads the ledgers of dead runs (then drops them), always sweeps the spool folder, and
    walks the whole tree when ``walk`` is set."""
    removed = 0
    runs = dest.joinpath(*RUNS_DIR.parts)
    ledgers = sorted(runs.glob("*" + _LEDGER)) if runs.is_dir() else []
    for ledger in ledgers:
        if ledger.name.removesuffix(_LEDGER) in live:
            continue
        for folder in _folders_of(dest, ledger):
            removed += _sweep_folder(folder, live)
        with suppress(FileNotFoundError):
            os.unlink(ledger)
    removed += _sweep_folder(dest.joinpath(*TMP_DIR.parts), live)
    if walk:
        for root, _dirs, files in os.walk(dest):
            removed += _remove_dead(root, files, live)
    return removed


def _folders_of(dest: Path, ledger: Path) -> Iterator[Path]:
    """The folders a ledger lists that are still under DEST (a bad line is skipped)."""
    try:
        lines = ledger.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for line in lines:
        try:
            rel = json.loads(line)
            if isinstance(rel, str) and rel not in ("", "."):
                yield resolve_under(dest, PurePosixPath(rel))
        except (ValueError, UnsafePathError):
            continue


def _sweep_folder(folder: Path, live: Collection[str]) -> int:
    try:
        names = [e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return _remove_dead(os.fspath(folder), names, live)


def _remove_dead(folder: str, names: list[str], live: Collection[str]) -> int:
    removed = 0
    for name in names:
        tag = part_tag(name)
        if tag is not None and tag not in live:
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed
