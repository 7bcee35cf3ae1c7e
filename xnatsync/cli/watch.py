"""``xnatsync watch``: the upload daemon's options, its signals and its log (settings as for
import: command line over a ``--config`` TOML ``[watch]`` table over the defaults).

SIGTERM and SIGINT stop it cleanly (exit 0: its normal stop under systemd); SIGHUP reads the
config file again and applies what may change while it runs (``Reloadable``: quiet-seconds,
labels, after-upload); a config that no longer parses is reported and the old settings kept.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from xnatsync.watch.daemon import Control

from xnatsync.cli.arguments import add_credentials
from xnatsync.cli.credentials import resolve_login
from xnatsync.cli.importcmd import DEFAULTS as IMPORT_DEFAULTS
from xnatsync.cli.importcmd import naming_from, state_home
from xnatsync.cli.outcome import INSECURE, logs_as_json
from xnatsync.cli.pull import _prompt, limits_from, tls_context
from xnatsync.cli.settings import merged, parse_size, single
from xnatsync.errors import ExitCode, UsageError, XnatSyncError, first_error, redact
from xnatsync.events import Event, FileFailed, FileRetry, Notice, Reporter
from xnatsync.report import JsonLines
from xnatsync.watch.options import Reloadable, WatchOptions
from xnatsync.watch.rules import AfterUpload, parse_address, parse_after_upload
from xnatsync.xnat.routes import check_base_url

WATCH_EXAMPLE = """examples (each runs as written against 'xnatsync emulator --seed demo', in a
folder holding ./spool; stop them with Ctrl-C):
  xnatsync watch https://xnat.example.org --project DEMO --spool spool --state watch-state \\
      --after-upload move:sent
  xnatsync watch --config configs/scanner.toml

Each StudyInstanceUID becomes one archived session, sent through XNAT's import service once no
new instance of it has arrived for --quiet-seconds; the archive is checked before the files are
kept, deleted or moved. The queue, journal, quarantine and status.json live in --state (never
inside the spool). SIGTERM stops it cleanly (exit 0); SIGHUP reloads --config (quiet-seconds,
labels, after-upload).
"""

DEFAULTS: dict[str, Any] = {key: IMPORT_DEFAULTS[key] for key in (
    "listings", "tps_limit", "bwlimit", "attempts", "read_timeout", "connect_timeout",
    "concurrency")} | {
    "quiet_seconds": 120.0, "settle_seconds": 2.0, "after_upload": "keep", "poll": False,
    "poll_seconds": 1.0, "rescan_seconds": 600.0, "max_backlog_age": 3600.0,
    "max_unreachable": 900.0, "stop_grace": 30.0,
}  # fmt: skip


def add_watch(sub: Any) -> None:
    p = sub.add_parser(
        "watch",
        help="the upload daemon: send each study arriving in a spool folder once it is complete",
        description="Watch a spool folder for DICOM; send each study to XNAT once it is "
        "complete, check it, then keep, delete or move its files. Runs until stopped.",
        epilog=WATCH_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", nargs="?", help="XNAT base URL, e.g. https://xnat.example.org")
    p.add_argument("--config", help="TOML file with any of these options ([watch] table)")
    p.add_argument("--project", help="the project to import into (it must exist)")
    p.add_argument("--spool", help="the folder DICOM arrives in (a scanner export, a receiver)")
    p.add_argument("--state", help="queue, journal, quarantine, status.json (default: user "
                   "state dir, keyed by the spool; never inside the spool)")  # fmt: skip
    p.add_argument(
        "--quiet-seconds",
        type=float,
        help="a study is complete this long after its last new instance (120)",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        help="a file is read once its size stayed the same this long (2)",
    )
    p.add_argument("--after-upload", help="keep, delete or move:DIR, once checked (keep)")
    p.add_argument("--to", choices=("archive", "prearchive"), help="default: archive")
    p.add_argument(
        "--poll",
        action="store_true",
        default=None,
        help="poll the spool instead of OS file events (network shares)",
    )
    p.add_argument("--poll-seconds", type=float, help="how often to poll (1)")
    p.add_argument("--health", help="serve the status on HOST:PORT (200 healthy, 503 not)")
    p.add_argument(
        "--max-backlog-age",
        type=float,
        help="unhealthy when a study waits longer than this, seconds (3600)",
    )
    p.add_argument(
        "--max-unreachable",
        type=float,
        help="unhealthy when the server is away longer than this, seconds (900)",
    )
    names = p.add_argument_group("labels (default: XNAT's own rules)")
    names.add_argument("--subject-label", help="template over DICOM keywords, e.g. '{PatientID}'")
    names.add_argument("--session-label", help="e.g. '{PatientID}_{StudyDate}'")
    names.add_argument("--subject", help="one subject label for every study")
    add_credentials(p)
    run = p.add_argument_group("transfers")
    run.add_argument("--concurrency", type=int, help="studies sent at once (default: 2)")
    run.add_argument("--attempts", type=int, help="tries per request before the study waits")
    run.add_argument("--part-size", help="a bigger study goes in several requests (2G)")
    rep = p.add_argument_group("reporting")
    rep.add_argument("--log-json", action="store_true", default=None, help="JSON-lines on stderr")
    rep.add_argument("--quiet", "-q", action="store_true", default=None, help="errors only")
    p.set_defaults(handler=run_watch, own_signals=True)


def live_from(settings: dict[str, Any]) -> Reloadable:
    """The settings a SIGHUP may change (``Reloadable``)."""
    after = parse_after_upload(str(settings["after_upload"]))
    if after.folder is not None:
        after = AfterUpload(after.action, Path(after.folder).absolute())
    return Reloadable(quiet_seconds=float(settings["quiet_seconds"]),
                      naming=naming_from(settings), after_upload=after)  # fmt: skip


def options_from(settings: dict[str, Any], env: dict[str, str]) -> WatchOptions:
    for name in ("url", "project", "spool"):
        if not settings.get(name):
            what = "the XNAT URL (argument or 'url' in --config)" if name == "url" else f"--{name}"
            raise UsageError(f"watch needs {what}")
    if settings.get("to") not in (None, "archive", "prearchive"):
        raise UsageError(f"--to {settings['to']!r}: archive or prearchive")
    if settings.get("session"):
        raise UsageError("watch names each study's session: use --session-label, not --session")
    url = check_base_url(settings["url"])
    limits, timeouts, retry = limits_from(settings)
    credentials = resolve_login(
        url, user=settings.get("user"), token_env=settings.get("token_env"), env=env,
        prompt=_prompt if sys.stdin.isatty() else None,
    )  # fmt: skip
    state = settings.get("state")
    return WatchOptions(
        url=url, project=single(settings, "project", "watch"),
        spool=Path(settings["spool"]).absolute(), credentials=credentials,
        live=live_from(settings), state=Path(state).absolute() if state else None,
        to_prearchive=settings.get("to") == "prearchive", poll=bool(settings.get("poll")),
        poll_seconds=float(settings["poll_seconds"]),
        settle_seconds=float(settings["settle_seconds"]),
        rescan_seconds=float(settings["rescan_seconds"]),
        health=parse_address(settings["health"]) if settings.get("health") else None,
        max_backlog_age=float(settings["max_backlog_age"]),
        max_unreachable=float(settings["max_unreachable"]),
        stop_grace=float(settings["stop_grace"]),
        part_bytes=parse_size(settings["part_size"]) if settings.get("part_size") else 2 << 30,
        limits=limits, timeouts=timeouts, retry=retry,
        ssl=tls_context(settings.get("ca_bundle"), bool(settings.get("insecure"))),
    )  # fmt: skip


class TextLog:
    """The daemon's log as text lines on stderr: notices, retries, failures (no progress)."""

    def __init__(self, write: Callable[[str], object], quiet: bool) -> None:
        self._write, self._quiet = write, quiet

    def emit(self, event: Event) -> None:
        if isinstance(event, FileFailed):
            self._write(f"xnatsync watch: failed: {event.relpath}: {event.reason}\n")
        elif self._quiet:
            return
        elif isinstance(event, Notice):
            self._write(f"xnatsync watch: {event.message}\n")
        elif isinstance(event, FileRetry):
            self._write(f"xnatsync watch: retrying {event.relpath} in {event.delay:.1f} s "
                        f"(attempt {event.attempt}: {event.reason})\n")  # fmt: skip

    def close(self) -> None:
        pass


def run_watch(args: argparse.Namespace) -> int:
    settings = merged(args, "watch", DEFAULTS)
    env = dict(os.environ)
    options = options_from(settings, env)
    state = options.state_dir(state_home(env))
    lines = JsonLines(sys.stderr.write) if settings.get("log_json") else None
    reporter: Reporter = (
        lines if lines is not None else TextLog(sys.stderr.write, bool(settings.get("quiet")))
    )
    reporter.emit(Notice(f"state (queue, journal, quarantine, status.json) in {state}"))
    if options.ssl is False:
        reporter.emit(Notice(INSECURE))

    def reload() -> Reloadable:
        return live_from(merged(args, "watch", DEFAULTS))

    if lines is not None:
        with logs_as_json(lines):
            _run(options, state, reporter, reload)
    else:
        _run(options, state, reporter, reload)
    return ExitCode.OK


def _run(
    options: WatchOptions, state: Path, reporter: Reporter, reload: Callable[[], Reloadable]
) -> None:
    from xnatsync.watch.daemon import Control, watch  # pydicom only for this command

    control = Control(options.live)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_signals, control, reporter, reload)
            try:
                counts = await watch(options, state, reporter, control=control)
            finally:
                tasks.cancel_scope.cancel()
            reporter.emit(Notice(f"stopped: {counts}"))

    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        raise first_error(group) from None


async def _signals(control: Control, reporter: Reporter, reload: Callable[[], Reloadable]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for number in signals:
            if number != signal.SIGHUP:
                reporter.emit(Notice("stopping: no new study is started; sends under way "
                                     "finish or resume on the next start"))  # fmt: skip
                control.stop()
                continue
            try:
                live = reload()
            except XnatSyncError as exc:
                reporter.emit(Notice(f"SIGHUP: config not reloaded ({redact(str(exc))}); "
                                     "the running settings stay"))  # fmt: skip
                continue
            control.reload(live)
            reporter.emit(Notice(
                f"SIGHUP: reloaded quiet-seconds={live.quiet_seconds}, after-upload="
                f"{live.after_upload.text}, labels {live.naming.subject.text} / "
                f"{live.naming.session.text} (server, project, spool, state, health and limits "
                "need a restart)"
            ))  # fmt: skip
