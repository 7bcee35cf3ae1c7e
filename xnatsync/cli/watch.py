"""``xnatsync watch``: the upload daemon's options, its signals and its log (settings as for
import: command line over a ``--config`` TOML ``[watch]`` table over the defaults).

With ``--listen HOST:PORT`` the C-STORE receiver (``receive.run.receiving``) runs in the same
process, writing into the watched spool: it is started before the daemon (a port in use fails at
once) and stopped before it, so no instance arrives once the daemon has begun to stop. The two
front-ends meet only here: ``watch/`` does not import ``receive/``.

SIGTERM and SIGINT stop it cleanly (exit 0: its normal stop under systemd): the receiver first
(no new associations; stores being written finish within its stop grace), then the daemon;
SIGHUP reads the config file again and applies what may change while it runs (``Reloadable``:
quiet-seconds, labels, after-upload); a config that no longer parses is reported and the old
settings kept.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from xnatsync.receive.options import ReceiveOptions
    from xnatsync.watch.daemon import Control

from xnatsync.cli.arguments import add_command, add_credentials
from xnatsync.cli.credentials import resolve_login
from xnatsync.cli.importcmd import DEFAULTS as IMPORT_DEFAULTS
from xnatsync.cli.importcmd import add_label_arguments, naming_from, state_home
from xnatsync.cli.outcome import INSECURE, logs_as_json
from xnatsync.cli.pull import _prompt, limits_from, tls_context
from xnatsync.cli.receive import (
    RECEIVER_DEFAULTS,
    add_receiver_arguments,
    log_to_stderr,
    receiver_options,
)
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
  xnatsync watch https://xnat.example.org --project DEMO --spool spool --state watch-state \\
      --listen 127.0.0.1:11112 --ae-title XNATSYNC --allow-ae SCANNER1

Each StudyInstanceUID becomes one archived session, sent through XNAT's import service once no
new instance of it has arrived for --quiet-seconds; the archive is checked before the files are
kept, deleted or moved. The queue, journal, quarantine and status.json live in --state (never
inside the spool). --listen also receives DICOM over the network (a C-STORE SCP, as `xnatsync
receive`) into the spool, in the same process. SIGTERM stops it cleanly (exit 0): the receiver
first, then the daemon; SIGHUP reloads --config (quiet-seconds, labels, after-upload).
"""

DEFAULTS: dict[str, Any] = {key: IMPORT_DEFAULTS[key] for key in (
    "listings", "tps_limit", "bwlimit", "attempts", "read_timeout", "connect_timeout",
    "concurrency")} | {
    "quiet_seconds": 120.0, "settle_seconds": 2.0, "after_upload": "keep", "poll": False,
    "poll_seconds": 1.0, "rescan_seconds": 600.0, "max_backlog_age": 3600.0,
    "max_unreachable": 900.0, "stop_grace": 30.0,
} | RECEIVER_DEFAULTS  # fmt: skip


def add_watch(sub: Any) -> None:
    p = add_command(
        sub, "watch",
        help="the upload daemon: send each study arriving in a spool folder once it is complete",
        description="Watch a spool folder for DICOM; send each study to XNAT once it is "
        "complete, check it, then keep, delete or move its files. Runs until stopped.",
        epilog=WATCH_EXAMPLE,
    )  # fmt: skip
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
    add_label_arguments(p, one_study=False)
    add_credentials(p)
    run = p.add_argument_group("transfers")
    run.add_argument("--concurrency", type=int, help="studies sent at once (default: 2)")
    run.add_argument("--attempts", type=int, help="tries per request before the study waits")
    run.add_argument("--part-size", help="a bigger study goes in several requests (2G)")
    dicom = p.add_argument_group(
        "receiving DICOM in the same process (as `xnatsync receive`; seconds)"
    )
    add_receiver_arguments(dicom, dicom, watch=True)
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


def listen_from(settings: dict[str, Any], spool: Path) -> ReceiveOptions | None:
    """The receiver's options when ``listen`` is set; receiver settings without it are an
    error (they would silently do nothing)."""
    if settings.get("listen"):
        return receiver_options(settings, spool)
    stray = [k for k, v in RECEIVER_DEFAULTS.items() if settings.get(k, v) != v]
    if stray:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in stray)
        raise UsageError(f"{names}: only with --listen HOST:PORT (receiving DICOM)")
    return None


def run_watch(args: argparse.Namespace) -> int:
    settings = merged(args, "watch", DEFAULTS)
    env = dict(os.environ)
    listen = listen_from(settings, Path(str(settings.get("spool") or ".")).absolute())
    options = options_from(settings, env)  # after the checks above: it may prompt
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

    with ExitStack() as logs:
        if listen is not None:  # the receiver's records (and pynetdicom's) in the same style
            level = logging.WARNING if settings.get("quiet") else logging.INFO
            logs.enter_context(log_to_stderr(json_lines=lines is not None, level=level))
        elif lines is not None:
            logs.enter_context(logs_as_json(lines))
        _run(options, state, reporter, reload, listen)
    return ExitCode.OK


def _run(
    options: WatchOptions,
    state: Path,
    reporter: Reporter,
    reload: Callable[[], Reloadable],
    listen: ReceiveOptions | None = None,
) -> None:
    from xnatsync.watch.daemon import Control, check_places, watch  # pydicom only for this

    control = Control(options.live)
    check_places(options, state)  # before a port opens for senders

    async def main() -> None:
        async with anyio.create_task_group() as tasks, AsyncExitStack() as stack:
            stop_first: Callable[[], object] | None = None
            if listen is not None:
                from xnatsync.receive.run import receiving  # pynetdicom only with --listen

                stop_first = (await stack.enter_async_context(receiving(listen))).stop
            tasks.start_soon(_signals, control, reporter, reload, stop_first)
            try:
                counts = await watch(options, state, reporter, control=control)
            finally:
                tasks.cancel_scope.cancel()
            reporter.emit(Notice(f"stopped: {counts}"))

    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        raise first_error(group) from None


async def _signals(
    control: Control,
    reporter: Reporter,
    reload: Callable[[], Reloadable],
    stop_first: Callable[[], object] | None = None,
) -> None:
    """SIGTERM/SIGINT: ``stop_first`` (the receiver: no new instances; blocking, so in a worker
    thread), then the daemon; SIGHUP: reload."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for number in signals:
            if number != signal.SIGHUP:
                if stop_first is not None:
                    await anyio.to_thread.run_sync(stop_first)
                    stop_first = None
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
                f"{live.naming.session.text} (server, project, spool, state, health, limits "
                "and the DICOM receiver need a restart)"
            ))  # fmt: skip
