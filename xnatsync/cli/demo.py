"""``xnatsync demo``: a real sync against the emulator, start to finish, in one command.

Starts ``xnatsync emulator --seed demo`` as its own process, pulls project DEMO with progress,
pulls again to show that nothing is transferred twice, then shows where the files are and what
the report says. The emulator is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from xnatsync.cli.pull import pull_until_signal
from xnatsync.errors import ExitCode, XnatSyncError
from xnatsync.pull.options import PullOptions
from xnatsync.report import Summary, reporters_for
from xnatsync.xnat.auth import Credentials


def add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="start the emulator with demo data, pull it twice, show the result",
        epilog="example: xnatsync demo --dest ./demo-mirror",
    )
    p.add_argument("--dest", default="demo-mirror", help="where to mirror (default ./demo-mirror)")
    p.set_defaults(handler=run_demo)


def pull_once(options: PullOptions, title: str) -> Summary:
    print(f"\n== {title}", flush=True)
    summary = Summary()
    reporter = reporters_for(summary, progress=sys.stderr.isatty())
    try:
        pull_until_signal(options, reporter)
    finally:
        reporter.close()
    print(summary.render(), flush=True)
    return summary


def show_tree(dest: Path, limit: int = 12) -> None:
    files = sorted(p for p in dest.rglob("*") if p.is_file() and ".xnatsync" not in p.parts)
    total = sum(p.stat().st_size for p in files)
    print(f"\n== {len(files)} files, {total} bytes under {dest}")
    for path in files[:limit]:
        print(f"  {path.relative_to(dest)}")
    if len(files) > limit:
        print(f"  … and {len(files) - limit} more")


def run_demo(args: argparse.Namespace) -> int:
    from xnatsync.emulator.cli import spawn  # here: every other command starts without it

    dest = Path(args.dest).absolute()
    try:
        proc, url = spawn("--seed", "demo")
    except RuntimeError as exc:
        raise XnatSyncError(str(exc)) from None
    print(f"started the XNAT emulator at {url} (project DEMO, real DICOM made with pydicom)")
    try:
        options = PullOptions(url, ("DEMO",), dest, Credentials("admin", "admin"))
        first = pull_once(options, f"xnatsync pull {url} --project DEMO --dest {args.dest}")
        second = pull_once(options, "the same command again: everything is up to date")
        show_tree(dest)
        print("\n== the first pull's report (--report FILE writes it)")
        print(json.dumps({k: v for k, v in first.as_dict().items() if v or v == 0}, indent=2))
        print(f"\nnext: xnatsync status --dest {args.dest}; xnatsync verify --dest {args.dest}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ok = first.ok and second.ok and second.files_transferred == 0
    return ExitCode.OK if ok else ExitCode.FAILED_FILES


__all__ = ["add_demo"]
