"""``xnatsync push``: its options and its thin handler (settings as for pull: command line over
a ``--config`` TOML ``[push]`` table over the defaults)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from xnatsync.cli.arguments import add_command, add_credentials, add_reporting
from xnatsync.cli.credentials import resolve_login
from xnatsync.cli.interrupt import run_interruptible
from xnatsync.cli.outcome import Output, run_reported
from xnatsync.cli.pull import DEFAULTS as PULL_DEFAULTS
from xnatsync.cli.pull import MAX_TRANSFERS, _prompt, limits_from, tls_context
from xnatsync.cli.settings import merged, single
from xnatsync.errors import UsageError
from xnatsync.events import Reporter
from xnatsync.layout import DEFAULT_LAYOUT, parse_layout
from xnatsync.limits import Limits
from xnatsync.push.options import PushOptions
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.routes import check_base_url

PUSH_EXAMPLE = """examples (each runs as written against 'xnatsync emulator --seed demo' once a
project COPY exists there and DEMO was pulled with
'xnatsync pull https://xnat.example.org --project DEMO --no-assessors --dest mirror'):
  xnatsync push https://xnat.example.org --project COPY --source mirror --dry-run
  xnatsync push https://xnat.example.org --project COPY --source mirror

A tree made by pull is sent into --project (with the --layout that pull had, if any),
creating the subjects, sessions and scans it names; files the server has with the same size
and MD5 are skipped, files it has with other content are conflicts (exit 1) unless
--overwrite. Many small new files of a resource go as zips the server unpacks. Assessor and
reconstruction folders fill the resources of one that exists in the target session (by ID or
label); push creates none (each file of one the target lacks is reported as failed).
"""

_SHARED = ("concurrency", "listings", "tps_limit", "bwlimit", "attempts", "read_timeout",
           "connect_timeout")  # fmt: skip
DEFAULTS: dict[str, Any] = {key: PULL_DEFAULTS[key] for key in _SHARED} | {
    "source": ".", "xsi_type": "xnat:mrSessionData", "overwrite": False, "dry_run": False,
}  # fmt: skip


def add_push(sub: Any) -> None:
    p = add_command(
        sub, "push",
        help="upload a local tree in the pull layout into a project's resources",
        description="Send resource files to XNAT: concurrent, one writer per resource, "
        "checked against the server's catalog afterwards, resumable.",
        epilog=PUSH_EXAMPLE,
    )  # fmt: skip
    p.add_argument("--project", help="the project to send into (it must exist)")
    p.add_argument("--source", help="the tree to send, as pull writes it (default: .)")
    p.add_argument(
        "--tree-project",
        help="the project folder under --source to send (default: the only one, or the one "
        "named like --project)",
    )
    p.add_argument(
        "--layout",
        help="the tree's path template, as given to the pull that wrote it (default: pull's "
        "default); {subject} and {experiment} labels are needed, IDs are refused",
    )
    p.add_argument(
        "--xsi-type",
        help="type of the sessions push creates (default: xnat:mrSessionData; scans get the "
        "matching scan type)",
    )
    p.add_argument(
        "--overwrite", action="store_true", default=None,
        help="replace files the server has with other content (default: report them)",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", default=None, help="print the plan only")
    add_credentials(p)
    run = p.add_argument_group("transfers")
    run.add_argument(
        "--concurrency", type=int,
        help=f"resources sent at once, at most {MAX_TRANSFERS} (default: {Limits().transfers})",
    )  # fmt: skip
    run.add_argument(
        "--attempts", type=int,
        help=f"tries per request, the first included (default: {RetryPolicy().attempts})",
    )  # fmt: skip
    run.add_argument(
        "--no-zip", action="store_true", default=None,
        help="one request per file, never a zip of a resource's many small new files",
    )  # fmt: skip
    add_reporting(p)
    p.set_defaults(handler=run_push)


def options_from(settings: dict[str, Any], env: dict[str, str]) -> PushOptions:
    """Validated ``PushOptions`` from merged settings; credentials are looked up here."""
    if not settings.get("url"):
        raise UsageError("push needs the XNAT URL (argument or 'url' in --config)")
    if not settings.get("project"):
        raise UsageError("push needs --project (the project to send into)")
    url = check_base_url(settings["url"])
    project = single(settings, "project", "push")
    session_type, source = single(settings, "xsi_type", "push"), single(settings, "source", "push")
    limits, timeouts, retry = limits_from(settings)
    credentials = resolve_login(
        url, user=settings.get("user"), token_env=settings.get("token_env"), env=env,
        prompt=_prompt if sys.stdin.isatty() else None,
    )  # fmt: skip
    return PushOptions(
        url=url,
        project=project,
        source=Path(source).absolute(),
        credentials=credentials,
        tree_project=settings.get("tree_project"),
        layout=parse_layout(settings["layout"], one_project=True)
        if settings.get("layout")
        else DEFAULT_LAYOUT,
        session_type=session_type,
        overwrite=bool(settings.get("overwrite")),
        dry_run=bool(settings.get("dry_run")),
        zips=not settings.get("no_zip"),
        limits=limits,
        timeouts=timeouts,
        retry=retry,
        ssl=tls_context(settings.get("ca_bundle"), bool(settings.get("insecure"))),
    )


def run_push(args: argparse.Namespace) -> int:
    from xnatsync.push.run import push  # here: every other command starts without it

    settings = merged(args, "push", DEFAULTS)
    options = options_from(settings, dict(os.environ))
    output = Output.from_settings(settings, sys.stderr.isatty())

    def until_signal(reporter: Reporter) -> bool:
        _, interrupted = run_interruptible(lambda: push(options, reporter))
        return interrupted

    insecure = options.ssl is False
    return run_reported(until_signal, output, dry_run=options.dry_run, insecure=insecure,
                        upload=True)  # fmt: skip
