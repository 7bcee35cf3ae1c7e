"""``xnatsync pull``: its options and its thin handler.

Option values come from the command line over a ``--config`` TOML file over the defaults; the
result is validated into a ``PullOptions`` here, at the edge, together with the credentials
(environment, ``~/.netrc`` or a prompt) and the TLS context. The handler makes one library call
(``xnatsync.pull``) and maps its outcome to an exit code.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xnatsync.cli.arguments import add_command, add_credentials, add_reporting
from xnatsync.cli.credentials import resolve_login
from xnatsync.cli.interrupt import run_interruptible
from xnatsync.cli.outcome import Output, run_reported
from xnatsync.cli.settings import merged, parse_rate
from xnatsync.cli.shardenv import SHARDS_ENV, shard_from
from xnatsync.errors import (
    UsageError,
)
from xnatsync.events import Reporter
from xnatsync.layout import parse_layout
from xnatsync.limits import Limits, Timeouts
from xnatsync.pull.batching import BatchPolicy
from xnatsync.pull.changes import DAY, DEFAULT_FULL_EVERY_DAYS, ChangedOnly
from xnatsync.pull.options import PullOptions
from xnatsync.pull.run import pull
from xnatsync.pull.selection import Selection
from xnatsync.retry import RetryPolicy
from xnatsync.shards import Shard
from xnatsync.xnat.routes import check_base_url
from xnatsync.xnat.search import SearchSource, read_document

PULL_EXAMPLE = """examples (each runs as written against 'xnatsync emulator --seed demo'):
  xnatsync pull https://xnat.example.org --project DEMO --dest mirror
  xnatsync pull https://xnat.example.org --project DEMO --experiment @sessions.csv:label \\
      --scan-type 'T1*' --resource DICOM --dest cohort --concurrency 16
  xnatsync pull https://xnat.example.org --project DEMO --dest mirror --changed-only
  xnatsync pull https://xnat.example.org --project DEMO --search DEMO_MR --dest cohort-mr
  xnatsync pull --config configs/nightly-mirror.toml
"""

MAX_TRANSFERS = 128  # beyond this a server is better served by zips than by more connections
MAX_LISTINGS = 64
LAYOUT_EXAMPLE = "{project}/{subject}/{experiment}/{container}/{resource}/{path}"

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
    "attempts": RetryPolicy().attempts,
    "read_timeout": Timeouts().read_stall,
    "connect_timeout": Timeouts().connect,
}


def add_pull(sub: Any) -> None:
    p = add_command(
        sub, "pull",
        help="download projects, or a selection of them, into a local tree",
        description="Mirror XNAT projects to local disk: concurrent, MD5-verified, resumable.",
        epilog=PULL_EXAMPLE,
    )  # fmt: skip
    p.add_argument("--project", action="append", help="project ID (repeatable)")
    p.add_argument("--dest", help="local destination directory (default: .)")
    add_credentials(p)
    sel = p.add_argument_group("selection (labels or IDs; @file.txt or @file.csv:column)")
    for name in ("subject", "experiment"):
        sel.add_argument(f"--{name}", action="append", help=f"{name} to include (repeatable)")
    sel.add_argument("--xsi-type", action="append", help="experiment type, e.g. xnat:mrSessionData")
    sel.add_argument("--scan-type", action="append", help="scan type glob, e.g. 'T1*'")
    sel.add_argument("--resource", action="append", help="resource label, e.g. DICOM")
    sel.add_argument("--since", help="experiments inserted or modified on/after YYYY-MM-DD")
    sel.add_argument(
        "--search", action="append", metavar="ID",
        help="experiments a stored search (/data/search/saved/ID) returns, run as you now",
    )  # fmt: skip
    sel.add_argument(
        "--search-xml", action="append", metavar="FILE",
        help="experiments an XNAT search document (an xdat:bundle, as XNAT saves one) returns",
    )  # fmt: skip
    for level in ("assessors", "session-resources", "subject-resources", "project-resources"):
        sel.add_argument(f"--no-{level}", action="store_true", default=None, help=f"skip {level}")
    add_nightly(p)
    out = p.add_argument_group("local tree")
    out.add_argument(
        "--layout",
        help=f"path template (default: XNAT's archive shape), e.g. --layout '{LAYOUT_EXAMPLE}'",
    )
    out.add_argument("--dry-run", action="store_true", default=None, help="print the plan only")
    out.add_argument(
        "--delete", action="store_true", default=None, help="remove files gone remotely"
    )
    out.add_argument(
        "--max-delete", type=int,
        help="with --delete: refuse all deletes if more than this many (default: 10%% of the "
        "local files, at least 10)",
    )  # fmt: skip
    out.add_argument(
        "--no-trash", action="store_true", default=None,
        help="with --delete: unlink instead of moving to DEST/.xnatsync/trash",
    )  # fmt: skip
    out.add_argument("--fsync", action="store_true", default=None, help="fsync files and dirs")
    out.add_argument(
        "--adopt-by-size", action="store_true", default=None,
        help="keep a file already at its place whose size matches when the server lists no "
        "MD5 for it (files with a listed MD5 are always adopted if they hash to it)",
    )  # fmt: skip
    out.add_argument("--journal", help="journal path (default DEST/.xnatsync/journal.db)")
    out.add_argument(
        "--journal-dir",
        help="folder of the journals, one per shard (default DEST/.xnatsync). On Lustre, GPFS, "
        "NFS or CIFS a journal is opened in SQLite's exclusive mode (readable by others only "
        "after its run); a local disk here avoids that",
    )  # fmt: skip
    add_shard_options(p)
    run = p.add_argument_group("transfers")
    run.add_argument(
        "--concurrency", type=int,
        help=f"parallel file transfers, at most {MAX_TRANSFERS} (default: {Limits().transfers}); "
        "per process: with --shard, each shard runs this many",
    )  # fmt: skip
    run.add_argument(
        "--listings", type=int,
        help=f"parallel listing requests, at most {MAX_LISTINGS} (default: {Limits().listings})",
    )  # fmt: skip
    run.add_argument("--tps-limit", type=float, help="max requests per second (default: none)")
    run.add_argument("--bwlimit", help="max bytes per second, e.g. 50M (default: none)")
    run.add_argument(
        "--attempts", type=int,
        help=f"tries per request, the first included (default: {RetryPolicy().attempts})",
    )  # fmt: skip
    run.add_argument("--retries", type=int, dest="attempts", help=argparse.SUPPRESS)  # old name
    run.add_argument(
        "--no-zip", action="store_true", default=None,
        help="one request per file, never a zip per resource of small files",
    )  # fmt: skip
    run.add_argument(
        "--read-timeout", type=float,
        help=f"seconds without data before retrying (default: {Timeouts().read_stall:g})",
    )  # fmt: skip
    run.add_argument(
        "--connect-timeout", type=float,
        help=f"seconds to connect (default: {Timeouts().connect:g})",
    )  # fmt: skip
    add_reporting(p)
    p.set_defaults(handler=run_pull)


CHANGED_ONLY_HELP = (
    "list in detail only the sessions and subjects whose server dates (insert_date, "
    "last_modified; for image sessions also the newest workflow, which XNAT logs for every "
    "file uploaded or removed through its API) differ from those the server gave when each "
    "was last mirrored whole; the others are not looked at. Dates are compared as the server "
    "writes them, never with this machine's clock. Assumes XNAT records a change in those "
    "dates: it does not when files change on its disk behind its back, hence a full listing "
    "every --full-every days. Applies after a run that completed without failures; another "
    "selection or layout lists in full; a run with --delete always lists in full, so deletes "
    "keep following the server"
)


def add_nightly(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("nightly runs")
    group.add_argument("--changed-only", action="store_true", default=None, help=CHANGED_ONLY_HELP)
    group.add_argument(
        "--full-every", type=float, metavar="DAYS",
        help=f"with --changed-only: list every session when the last full listing is this "
        f"many days old (default: {DEFAULT_FULL_EVERY_DAYS:g}; 0: every run)",
    )  # fmt: skip


def changed_only_from(settings: dict[str, Any]) -> ChangedOnly | None:
    days = settings.get("full_every")
    if not settings.get("changed_only"):
        if days is not None:
            raise UsageError("--full-every applies only with --changed-only")
        return None
    if days is None:
        days = DEFAULT_FULL_EVERY_DAYS
    if days < 0:
        raise UsageError(f"--full-every must be 0 or more days, not {days:g}")
    return ChangedOnly(full_every=days * DAY)


def searches_from(settings: dict[str, Any]) -> tuple[SearchSource, ...]:
    """The searches to select by; each document file read and checked here, before any
    request (a malformed one, or one not rooted at an experiment type, is a usage error)."""
    sources = [SearchSource(search_id=i) for i in _strings(settings.get("search"))]
    for path in _strings(settings.get("search_xml")):
        try:
            xml = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"--search-xml {path}: {exc.strerror or exc}") from exc
        sources.append(SearchSource(document=read_document(xml, f"--search-xml {path}")))
    return tuple(sources)


def _strings(value: str | list[str] | None) -> list[str]:
    """A setting the command line repeats and a config file may give once."""
    return [value] if isinstance(value, str) else list(value or ())


def add_shard_options(p: argparse.ArgumentParser) -> None:
    shards = p.add_argument_group(
        "shards (one part of the selection per process: Slurm job arrays, Kubernetes Indexed "
        "Jobs; see configs/slurm-pull.sh and configs/k8s-indexed-job.yaml)"
    )
    shards.add_argument(
        "--shard", metavar="K/N|auto",
        help="take only the sessions (and subjects) whose accession ID hashes to shard K of N "
        "(K from 0), project resources in shard 0; 'auto' reads SLURM_ARRAY_TASK_* or "
        "JOB_COMPLETION_INDEX. Each shard keeps its own journal and lock; never with --delete",
    )  # fmt: skip
    shards.add_argument(
        "--shards", type=int, metavar="N",
        help=f"with --shard auto on Kubernetes: the number of shards (else ${SHARDS_ENV})",
    )  # fmt: skip
    shards.add_argument(
        "--total-concurrency", type=int, metavar="T",
        help="transfers for the whole job, shared by its N shards: each runs T/N "
        "(instead of --concurrency, which is per shard)",
    )  # fmt: skip
    shards.add_argument(
        "--delete-only", action="store_true", default=None,
        help="after every shard finished: list everything unsharded, download nothing, "
        "delete what left the server (as --delete, with its --max-delete and --no-trash)",
    )  # fmt: skip


def shard_settings(settings: dict[str, Any], env: dict[str, str]) -> Shard | None:
    """The shard of this process, and its share of ``--total-concurrency`` (in ``settings``)."""
    shards = settings.get("shards")
    if shards is not None and shards < 1:
        raise UsageError(f"--shards must be positive, not {shards}")
    shard = shard_from(settings.get("shard"), shards, env)
    total = settings.get("total_concurrency")
    if total is None:
        return shard
    if settings["concurrency"] != DEFAULTS["concurrency"]:
        raise UsageError("give --concurrency (per shard) or --total-concurrency, not both")
    count = shard.count if shard is not None else 1
    if total < count:
        raise UsageError(
            f"--total-concurrency {total} is less than the {count} shards: each runs at least one"
        )
    settings["concurrency"] = total // count
    return shard


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


def at_most(settings: dict[str, Any], name: str, most: int) -> None:
    value = settings.get(name)
    if value is not None and value > most:
        raise UsageError(f"--{name} {value}: at most {most}")


def delete_options(settings: dict[str, Any]) -> None:
    """Options that only mean something with --delete are refused without it."""
    max_delete = settings.get("max_delete")
    if max_delete is not None and max_delete < 0:
        raise UsageError(f"--max-delete must be 0 or more, not {max_delete}")
    if not settings.get("delete") and not settings.get("delete_only"):
        for name in ("max_delete", "no_trash"):
            if settings.get(name) not in (None, False):
                raise UsageError(f"--{name.replace('_', '-')} applies only with --delete")


def limits_from(settings: dict[str, Any]) -> tuple[Limits, Timeouts, RetryPolicy]:
    for name in ("concurrency", "listings", "tps_limit", "attempts", "read_timeout"):
        positive(settings, name)
    at_most(settings, "concurrency", MAX_TRANSFERS)
    at_most(settings, "listings", MAX_LISTINGS)
    bw = settings.get("bwlimit")
    limits = Limits(
        transfers=settings["concurrency"],
        listings=settings["listings"],
        connections=settings["concurrency"] + settings["listings"] + 4,
        tps=settings.get("tps_limit"),
        bandwidth=parse_rate(bw) if bw else None,
    )
    timeouts = Timeouts(connect=settings["connect_timeout"], read_stall=settings["read_timeout"])
    return limits, timeouts, RetryPolicy(attempts=settings["attempts"])


def options_from(
    settings: dict[str, Any], *, prompt: Callable[[str], str] | None, env: dict[str, str]
) -> PullOptions:
    """Validated ``PullOptions`` from merged settings; credentials are looked up here."""
    if not settings.get("url"):
        raise UsageError("pull needs the XNAT URL (argument or 'url' in --config)")
    if not settings.get("project"):
        raise UsageError("pull needs at least one --project")
    url = check_base_url(settings["url"])
    shard = shard_settings(settings, env)
    limits, timeouts, retry = limits_from(settings)
    delete_options(settings)
    selection = selection_from(settings)
    searches = searches_from(settings)
    layout = settings.get("layout")
    journal = settings.get("journal")
    journal_dir = settings.get("journal_dir")
    credentials = resolve_login(
        url, user=settings.get("user"), token_env=settings.get("token_env"), env=env,
        prompt=prompt,
    )  # fmt: skip
    return PullOptions(
        url=url,
        projects=tuple(settings["project"]),
        dest=Path(settings["dest"]).absolute(),
        credentials=credentials,
        journal_path=Path(journal) if journal else None,
        selection=selection,
        layout=parse_layout(layout, one_project=len(set(settings["project"])) == 1)
        if layout
        else parse_layout(),
        dry_run=bool(settings.get("dry_run")),
        delete=bool(settings.get("delete")),
        max_delete=settings.get("max_delete"),
        purge=bool(settings.get("no_trash")),
        fsync=bool(settings.get("fsync")),
        batch=None if settings.get("no_zip") else BatchPolicy(),
        adopt_by_size=bool(settings.get("adopt_by_size")),
        changed_only=changed_only_from(settings),
        searches=searches,
        limits=limits,
        timeouts=timeouts,
        retry=retry,
        ssl=tls_context(settings.get("ca_bundle"), bool(settings.get("insecure"))),
        shard=shard,
        journal_dir=Path(journal_dir).absolute() if journal_dir else None,
        delete_only=bool(settings.get("delete_only")),
    )


def tls_context(ca_bundle: str | None, insecure: bool) -> ssl.SSLContext | bool | None:
    if insecure:
        return False
    if ca_bundle:
        try:
            return ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-bundle {ca_bundle}: {exc}") from exc
    return None


def run_pull(args: argparse.Namespace) -> int:
    settings = merged(args, "pull", DEFAULTS)
    options = options_from(
        settings, prompt=_prompt if sys.stdin.isatty() else None, env=dict(os.environ)
    )
    output = Output.from_settings(settings, sys.stderr.isatty())
    return run_reported(
        lambda reporter: pull_until_signal(options, reporter),
        output, dry_run=options.dry_run, insecure=options.ssl is False,
    )  # fmt: skip


def pull_until_signal(options: PullOptions, reporter: Reporter) -> bool:
    """Run one pull; True if SIGINT/SIGTERM interrupted it (what was verified stays done)."""
    _, interrupted = run_interruptible(lambda: pull(options, reporter))
    return interrupted


def _prompt(text: str) -> str:
    import getpass

    return getpass.getpass(text) if "assword" in text else input(text)
