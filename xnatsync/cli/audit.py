"""``xnatsync status`` and ``xnatsync verify``: a destination's journal, summarised or checked.

Both read the journal (``xnatsync.audit``); ``verify`` also re-hashes every file it says is done.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from xnatsync.audit import status, status_of_dest, verify, verify_dest
from xnatsync.errors import ExitCode
from xnatsync.journal import JOURNAL


def add_status(sub: Any) -> None:
    help_ = "summarise a destination's journal (or, given STATE/queue.db, a watch daemon's queue)"
    sharded = "exits 1 while any shard has not finished without error"
    _add_journal_command(sub, "status", help_, run_status, sharded)


def add_verify(sub: Any) -> None:
    help_ = "re-hash local files against the journal and the remote digests"
    _add_journal_command(sub, "verify", help_, run_verify, "every shard's journal is checked")


def _add_journal_command(sub: Any, name: str, help_: str, handler: Any, sharded: str) -> None:
    p = sub.add_parser(name, help=help_, epilog=f"example: xnatsync {name} --dest mirror")
    p.add_argument("--dest", default=".", help="destination directory (default: .)")
    p.add_argument("--journal", help="journal path (default DEST/.xnatsync/journal.db)")
    folder = "folder of a sharded pull's journals (default DEST/.xnatsync)"
    p.add_argument("--journal-dir", help=f"{folder}; with shards, {sharded}")
    p.set_defaults(handler=handler)


def journal_path(args: argparse.Namespace) -> Path:
    if args.journal:
        return Path(args.journal)
    return Path(args.dest) / JOURNAL


def run_status(args: argparse.Namespace) -> int:
    if args.journal:
        path = journal_path(args)
        queue = path if path.name == "queue.db" else path.parent / "queue.db"
        if path != queue:
            print(status(path))
        if queue.exists():  # the watch daemon's state folder: its queue too
            from xnatsync.watch.queue import describe

            print(describe(queue, time.time()))
        return ExitCode.OK
    folder = Path(args.journal_dir) if args.journal_dir else None
    text, complete = status_of_dest(Path(args.dest), folder)
    print(text)
    return ExitCode.OK if complete else ExitCode.FAILED_FILES


def run_verify(args: argparse.Namespace) -> int:
    if args.journal:
        text, ok = verify(Path(args.dest), journal_path(args))
    else:
        folder = Path(args.journal_dir) if args.journal_dir else None
        text, ok = verify_dest(Path(args.dest), folder)
    print(text)
    return ExitCode.OK if ok else ExitCode.FAILED_FILES
