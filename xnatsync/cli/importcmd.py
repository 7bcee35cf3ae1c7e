"""``xnatsync import``: its options and its thin handler (settings as for pull: command line
over a ``--config`` TOML ``[import]`` table over the defaults)."""

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
from xnatsync.cli.pull import _prompt, limits_from, tls_context
from xnatsync.cli.settings import merged, parse_size, single
from xnatsync.dicom.labels import (
    DEFAULT_SESSION,
    DEFAULT_SUBJECT,
    Naming,
    Rule,
    fixed,
    parse_template,
)
from xnatsync.dicom.options import IMPORTS, ImportOptions
from xnatsync.errors import UsageError
from xnatsync.events import Reporter
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.routes import check_base_url

IMPORT_EXAMPLE = """examples (each runs as written against 'xnatsync emulator --seed demo', with
DICOM files under ./export):
  xnatsync import https://xnat.example.org --project DEMO --source export --dry-run
  xnatsync import https://xnat.example.org --project DEMO --source export \\
      --subject-label '{PatientID}' --session-label '{PatientID}_{StudyDate}'

One archived session per StudyInstanceUID (a folder of several studies is split), sent through
XNAT's DICOM-zip import service with an explicit destination; every attempt first looks at the
archive and sends only the instances it lacks, so reruns, retries and studies that grew never
make a second session. Labels default to XNAT's own rules (subject = PatientName, session =
PatientID, unless the comments assign them); the journal and lock live under --state (default:
the user's state directory, keyed by server and project).
"""

_SHARED = ("listings", "tps_limit", "bwlimit", "attempts", "read_timeout", "connect_timeout")
DEFAULTS: dict[str, Any] = {key: PULL_DEFAULTS[key] for key in _SHARED} | {
    "concurrency": IMPORTS, "dry_run": False,
}  # fmt: skip


def add_import(sub: Any) -> None:
    p = add_command(
        sub, "import",
        help="send DICOM studies through XNAT's import service, one session per study",
        description="Import DICOM into XNAT: studies found by header, one session each, "
        "resumable, checked against the archive afterwards.",
        epilog=IMPORT_EXAMPLE,
    )  # fmt: skip
    p.add_argument("--project", help="the project to import into (it must exist)")
    p.add_argument("--source", action="append", help="a file or folder of DICOM (repeatable)")
    add_label_arguments(p, one_study=True)
    p.add_argument(
        "--to", choices=("archive", "prearchive"),
        help="where the sessions go (default: archive; prearchive leaves them for review)",
    )  # fmt: skip
    p.add_argument("--state", help="folder for the journal and lock (default: user state dir)")
    p.add_argument(
        "--follow-symlinks", action="store_true", default=None, help="follow symlinked files"
    )
    p.add_argument("--dry-run", action="store_true", default=None, help="print the plan only")
    add_credentials(p)
    run = p.add_argument_group("transfers")
    run.add_argument(
        "--concurrency", type=int, help=f"import requests at once (default: {IMPORTS})"
    )
    run.add_argument(
        "--attempts", type=int,
        help=f"tries per study, the first included (default: {RetryPolicy().attempts})",
    )  # fmt: skip
    run.add_argument(
        "--part-size", help="send a study bigger than this in several requests, cut between "
        "scans, e.g. 500M (default: 2G)",
    )  # fmt: skip
    add_reporting(p)
    p.set_defaults(handler=run_import)


def add_label_arguments(p: argparse.ArgumentParser, *, one_study: bool) -> None:
    """The label options of ``import`` and ``watch`` (``--session`` only where one study may be
    all there is: a daemon sees many)."""
    names = p.add_argument_group("labels (default: XNAT's own rules)")
    names.add_argument("--subject-label", help="template over DICOM keywords, e.g. '{PatientID}'")
    names.add_argument("--session-label", help="e.g. '{PatientID}_{StudyDate}'")
    names.add_argument("--subject", help="one subject label for every study")
    if one_study:
        names.add_argument("--session", help="one session label (for a single study)")


def naming_from(settings: dict[str, Any]) -> Naming:
    """``--subject``/``--session`` (fixed) or ``--*-label`` templates, else XNAT's rules."""
    rules: dict[str, Rule] = {}
    for what, default in (("subject", DEFAULT_SUBJECT), ("session", DEFAULT_SESSION)):
        value, template = settings.get(what), settings.get(f"{what}_label")
        if value and template:
            raise UsageError(f"give --{what} or --{what}-label, not both")
        rules[what] = (
            fixed(value, what=what) if value
            else parse_template(template, what=what) if template else default
        )  # fmt: skip
    return Naming(subject=rules["subject"], session=rules["session"])


def state_home(env: dict[str, str]) -> Path:
    """The user's state directory for xnatsync ($XDG_STATE_HOME, else ~/.local/state)."""
    base = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local/state"
    )
    return Path(base) / "xnatsync"


def options_from(settings: dict[str, Any], env: dict[str, str]) -> ImportOptions:
    if not settings.get("url"):
        raise UsageError("import needs the XNAT URL (argument or 'url' in --config)")
    if not settings.get("project"):
        raise UsageError("import needs --project (the project to import into)")
    if not settings.get("source"):
        raise UsageError("import needs at least one --source")
    url = check_base_url(settings["url"])
    if settings.get("to") not in (None, "archive", "prearchive"):
        raise UsageError(f"--to {settings['to']!r}: archive or prearchive")
    project = single(settings, "project", "import")
    limits, timeouts, retry = limits_from(settings)
    credentials = resolve_login(
        url, user=settings.get("user"), token_env=settings.get("token_env"), env=env,
        prompt=_prompt if sys.stdin.isatty() else None,
    )  # fmt: skip
    state = settings.get("state")
    return ImportOptions(
        url=url,
        project=project,
        sources=tuple(Path(s).absolute() for s in _many(settings["source"])),
        credentials=credentials,
        naming=naming_from(settings),
        state=Path(state).absolute() if state else None,
        follow_symlinks=bool(settings.get("follow_symlinks")),
        to_prearchive=settings.get("to") == "prearchive",
        part_bytes=parse_size(settings["part_size"]) if settings.get("part_size") else 2 << 30,
        dry_run=bool(settings.get("dry_run")),
        limits=limits,
        timeouts=timeouts,
        retry=retry,
        ssl=tls_context(settings.get("ca_bundle"), bool(settings.get("insecure"))),
    )


def _many(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def run_import(args: argparse.Namespace) -> int:
    settings = merged(args, "import", DEFAULTS)
    env = dict(os.environ)
    options = options_from(settings, env)
    state = options.state_dir(state_home(env))
    output = Output.from_settings(settings, sys.stderr.isatty())
    if not output.quiet and not output.log_json:
        print(f"xnatsync: import state (journal, lock) in {state}", file=sys.stderr)

    from xnatsync.dicom.run import import_dicom  # pydicom costs 0.3 s: only for this command

    def until_signal(reporter: Reporter) -> bool:
        _, interrupted = run_interruptible(lambda: import_dicom(options, state, reporter))
        return interrupted

    insecure = options.ssl is False
    return run_reported(until_signal, output, dry_run=options.dry_run, insecure=insecure,
                        upload=True)  # fmt: skip
