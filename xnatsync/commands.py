"""The ``pull``, ``status`` and ``verify`` commands: their options and their thin handlers.

Option values come from the command line over a ``--config`` TOML file over the defaults; the
result is validated into a ``PullConfig`` here, at the edge. Handlers make one library call.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from xnatsync.config import Limits, RetryPolicy, Timeouts, load_settings, parse_rate
from xnatsync.errors import LocalDiskError, UsageError, XnatSyncError, redact
from xnatsync.report import Summary, reporters_for
from xnatsync.selection import Selection

EXIT_INTERRUPTED = 130

PULL_EXAMPLE = """examples:
  xnatsync pull https://xnat.example.org --project DEMO --dest /data/mirror
  xnatsync pull https://xnat.example.org --project COHORT --experiment @sessions.csv:label \\
      --scan-type 'T1*' --resource DICOM --dest /scratch/cohort --concurrency 16
  xnatsync pull --config /etc/xnatsync/nightly.toml
"""

DEFAULTS: dict[str, Any] = {
    "dest": ".",
    "layout": None,
    "dry_run": False,
    "delete": False,
    "max_delete": None,
    "no_trash": False,
    "concurrency": Limits().transfers,
    "listings": Limits().listings,
    "tps_limit": None,
    "bwlimit": None,
    "fsync": False,
    "retries": RetryPolicy().attempts,
    "read_timeout": Timeouts().read_stall,
    "connect_timeout": Timeouts().connect,
}


def add_pull(sub: Any) -> None:
    p = sub.add_parser(
        "pull",
        help="download projects, or a selection of them, into a local tree",
        description="Mirror XNAT projects to local disk: concurrent, MD5-verified, resumable.",
        epilog=PULL_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", nargs="?", help="XNAT base URL, e.g. https://xnat.example.org")
    p.add_argument("--config", help="TOML file with any of these options ([pull] table)")
    p.add_argument("--project", action="append", help="project ID (repeatable)")
    p.add_argument("--dest", help="local destination directory (default: .)")
    auth = p.add_argument_group("credentials")
    auth.add_argument("--user", help="XNAT user (else $XNATSYNC_USER, ~/.netrc, or a prompt)")
    auth.add_argument("--token-env", help="name of an environment variable holding alias:secret")
    auth.add_argument("--ca-bundle", help="PEM file of CAs to trust for HTTPS")
    auth.add_argument("--insecure", action="store_true", default=None, help="skip TLS checks")
    sel = p.add_argument_group("selection (labels or IDs; @file.txt or @file.csv:column)")
    for name in ("subject", "experiment"):
        sel.add_argument(f"--{name}", action="append", help=f"{name} to include (repeatable)")
    sel.add_argument("--xsi-type", action="append", help="experiment type, e.g. xnat:mrSessionData")
    sel.add_argument("--scan-type", action="append", help="scan type glob, e.g. 'T1*'")
    sel.add_argument("--resource", action="append", help="resource label, e.g. DICOM")
    sel.add_argument("--since", help="experiments inserted or modified on/after YYYY-MM-DD")
    for level in ("assessors", "session-resources", "subject-resources", "project-resources"):
        sel.add_argument(f"--no-{level}", action="store_true", default=None, help=f"skip {level}")
    out = p.add_argument_group("local tree")
    out.add_argument("--layout", help="path template, e.g. '{subject}/{experiment}/{scan}/{path}'")
    out.add_argument("--dry-run", action="store_true", default=None, help="print the plan only")
    out.add_argument(
        "--delete", action="store_true", default=None, help="remove files gone remotely"
    )
    out.add_argument("--max-delete", type=int, help="refuse deletes beyond this many")
    out.add_argument("--no-trash", action="store_true", default=None, help="delete, don't trash")
    out.add_argument("--fsync", action="store_true", default=None, help="fsync files and dirs")
    out.add_argument("--journal", help="journal path (default DEST/.xnatsync/journal.db)")
    run = p.add_argument_group("transfers")
    run.add_argument("--concurrency", type=int, help="parallel file transfers (default 8)")
    run.add_argument("--listings", type=int, help="parallel listing requests (default 4)")
    run.add_argument("--tps-limit", type=float, help="max requests per second")
    run.add_argument("--bwlimit", help="max bytes per second, e.g. 50M")
    run.add_argument("--retries", type=int, help="attempts per request (default 5)")
    run.add_argument(
        "--no-zip", action="store_true", default=None,
        help="one request per file, never a zip per resource of small files",
    )  # fmt: skip
    run.add_argument("--read-timeout", type=float, help="seconds without data before retrying")
    run.add_argument("--connect-timeout", type=float, help="seconds to connect")
    rep = p.add_argument_group("reporting")
    rep.add_argument("--report", help="write a JSON summary here")
    rep.add_argument("--log-json", action="store_true", default=None, help="JSON-lines on stderr")
    rep.add_argument("--progress", action="store_true", default=None, help="bars even if no tty")
    rep.add_argument("--no-progress", action="store_true", default=None, help="no progress bars")
    rep.add_argument("--quiet", "-q", action="store_true", default=None, help="errors only")
    p.set_defaults(handler=run_pull)


def pull_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults, then the config file, then the command line."""
    settings = dict(DEFAULTS)
    if args.config:
        settings.update(load_settings(args.config, "pull"))
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("handler",)}
    settings.update(given)
    return settings


def selection_from(settings: dict[str, Any]) -> Selection:
    since = settings.get("since")
    try:
        since_date = dt.date.fromisoformat(since) if since else None
    except ValueError:
        raise UsageError(f"--since {since!r}: expected a date as YYYY-MM-DD") from None
    return Selection(
        subjects=frozenset(expand_ids(settings.get("subject"))),
        experiments=frozenset(expand_ids(settings.get("experiment"))),
        xsi_types=frozenset(settings.get("xsi_type") or ()),
        scan_types=tuple(settings.get("scan_type") or ()),
        resources=frozenset(settings.get("resource") or ()),
        since=since_date,
        assessors=not settings.get("no_assessors"),
        session_resources=not settings.get("no_session_resources"),
        subject_resources=not settings.get("no_subject_resources"),
        project_resources=not settings.get("no_project_resources"),
    )


def expand_ids(values: list[str] | None) -> list[str]:
    """Labels or IDs, where ``@file.txt`` reads one per line and ``@file.csv:col`` a column."""
    out: list[str] = []
    for value in values or ():
        if not value.startswith("@"):
            out.append(value)
            continue
        path, _, column = value[1:].partition(":")
        out.extend(_read_ids(path, column))
    return out


def _read_ids(path: str, column: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if not column:
                return [line.strip() for line in f if line.strip() and not line.startswith("#")]
            reader = csv.DictReader(f)
            if column not in (reader.fieldnames or ()):
                raise UsageError(f"{path}: no column {column!r} (has {reader.fieldnames})")
            return [row[column].strip() for row in reader if row[column].strip()]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def positive(settings: dict[str, Any], name: str) -> None:
    value = settings.get(name)
    if value is not None and value <= 0:
        raise UsageError(f"--{name.replace('_', '-')} must be positive, not {value}")


def limits_from(settings: dict[str, Any]) -> tuple[Limits, Timeouts, RetryPolicy]:
    for name in ("concurrency", "listings", "tps_limit", "retries", "read_timeout"):
        positive(settings, name)
    bw = settings.get("bwlimit")
    limits = Limits(
        transfers=settings["concurrency"],
        listings=settings["listings"],
        connections=settings["concurrency"] + settings["listings"] + 4,
        tps=settings.get("tps_limit"),
        bandwidth=parse_rate(bw) if bw else None,
    )
    timeouts = Timeouts(connect=settings["connect_timeout"], read_stall=settings["read_timeout"])
    return limits, timeouts, RetryPolicy(attempts=settings["retries"])


def run_pull(args: argparse.Namespace) -> int:
    from xnatsync.pull import PullConfig, run

    settings = pull_settings(args)
    if not settings.get("url"):
        raise UsageError("pull needs the XNAT URL (argument or 'url' in --config)")
    if not settings.get("project"):
        raise UsageError("pull needs at least one --project")
    limits, timeouts, retry = limits_from(settings)
    config = PullConfig.build(
        settings,
        selection=selection_from(settings),
        limits=limits,
        timeouts=timeouts,
        retry=retry,
        prompt=_prompt if sys.stdin.isatty() else None,
        stderr_is_tty=sys.stderr.isatty(),
        env=dict(os.environ),
    )
    if config.ssl is False:
        print(
            "xnatsync: warning: --insecure: the server's certificate is not checked; anyone on "
            "the network path can read and alter this transfer",
            file=sys.stderr,
        )
    summary = Summary()
    reporter = reporters_for(
        summary, progress=config.progress, log_json=config.log_json, dry_run=config.dry_run
    )
    error: XnatSyncError | None = None
    interrupted = False
    try:
        interrupted = run(config, reporter)
    except XnatSyncError as exc:
        error = exc
    finally:
        reporter.close()
    if config.report_path is not None:
        write_report(config.report_path, summary, error, interrupted)
    if not config.dry_run and not (config.quiet and summary.ok):
        print(summary.render(), file=sys.stderr)
    if error is not None:
        raise error
    if interrupted:
        print("xnatsync: interrupted; verified files stay done, rerun to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if summary.ok else 1


def _prompt(text: str) -> str:
    import getpass

    return getpass.getpass(text) if "assword" in text else input(text)


def write_report(path: Path, summary: Summary, error: XnatSyncError | None, stop: bool) -> None:
    data = summary.as_dict()
    data["status"] = (
        "interrupted" if stop else "error" if error else "ok" if summary.ok else "failed"
    )
    data["error"] = redact(str(error)) if error else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise LocalDiskError(f"cannot write report {path}: {exc.strerror or exc}") from exc


def add_status(sub: Any) -> None:
    _add_journal_command(sub, "status", "summarise a destination's journal", run_status)


def add_verify(sub: Any) -> None:
    help_ = "re-hash local files against the journal and the remote digests"
    _add_journal_command(sub, "verify", help_, run_verify)


def _add_journal_command(sub: Any, name: str, help_: str, handler: Any) -> None:
    p = sub.add_parser(name, help=help_, epilog=f"example: xnatsync {name} --dest /data/mirror")
    p.add_argument("--dest", default=".", help="destination directory (default: .)")
    p.add_argument("--journal", help="journal path (default DEST/.xnatsync/journal.db)")
    p.set_defaults(handler=handler)


def journal_path(args: argparse.Namespace) -> Path:
    if args.journal:
        return Path(args.journal)
    return Path(args.dest) / ".xnatsync" / "journal.db"


def run_status(args: argparse.Namespace) -> int:
    from xnatsync.inspect import status

    print(status(journal_path(args)))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from xnatsync.inspect import verify

    text, ok = verify(Path(args.dest), journal_path(args))
    print(text)
    return 0 if ok else 1
