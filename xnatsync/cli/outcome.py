"""How a run's outcome is told (pull, push): terminal options, the report JSON, the exit code,
and (with ``--log-json``) the library's log records as JSON lines beside its events."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xnatsync.cli.interrupt import INTERRUPTED_MESSAGE
from xnatsync.errors import (
    ExitCode,
    LocalDiskError,
    ProjectNotFoundError,
    XnatSyncError,
    exit_code_for,
    redact,
)
from xnatsync.events import Notice, Reporter
from xnatsync.report import JsonLines, Summary, reporters_for


class _JsonLog(logging.Handler):
    def __init__(self, lines: JsonLines) -> None:
        super().__init__(logging.WARNING)
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        fields = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        self._lines.record("Log", fields)


@contextmanager
def logs_as_json(lines: JsonLines) -> Iterator[None]:
    """While it lasts, xnatsync's warnings (a listing retried, a failed logout) are JSON lines
    too, instead of text that would break a stream of JSON records."""
    logger = logging.getLogger("xnatsync")
    handler, propagate = _JsonLog(lines), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@dataclass(frozen=True, slots=True)
class Output:
    """How a pull reports on the terminal and to files: the CLI's own business."""

    report_path: Path | None = None
    log_json: bool = False
    progress: bool = False
    quiet: bool = False

    @classmethod
    def from_settings(cls, settings: dict[str, Any], stderr_is_tty: bool) -> Output:
        report = settings.get("report")
        quiet = bool(settings.get("quiet"))
        return cls(
            report_path=Path(report) if report else None,
            log_json=bool(settings.get("log_json")),
            progress=bool(settings.get("progress"))
            or (stderr_is_tty and not settings.get("no_progress") and not quiet),
            quiet=quiet,
        )


def exit_code(summary: Summary, error: XnatSyncError | None, interrupted: bool) -> ExitCode:
    if error is not None:
        return ExitCode(exit_code_for(error))
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.ok else ExitCode.FAILED_FILES


def report_data(summary: Summary, error: XnatSyncError | None, stop: bool) -> dict[str, Any]:
    """The report: the summary's counts and lists, the run's status and its error, if any."""
    data = summary.as_dict()
    data["status"] = (
        "interrupted" if stop else "error" if error else "ok" if summary.ok else "failed"
    )
    data["error"] = redact(str(error)) if error else None
    return data


def write_report(path: Path, summary: Summary, error: XnatSyncError | None, stop: bool) -> None:
    data = report_data(summary, error, stop)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise LocalDiskError(f"cannot write report {path}: {exc.strerror or exc}") from exc


INSECURE = (
    "--insecure: the server's certificate is not checked; anyone on the network path can read "
    "and alter this transfer"
)


def run_reported(
    run: Callable[[Reporter], bool],
    output: Output,
    *,
    dry_run: bool,
    insecure: bool,
    upload: bool = False,
) -> int:
    """Run one command (``run(reporter)`` → interrupted?) with its reporters; report and exit
    as the options ask (JSON lines end with the summary record)."""
    if output.log_json:
        lines = JsonLines(sys.stderr.write)
        with logs_as_json(lines):
            return _reported(run, output, lines, dry_run, insecure, upload)
    return _reported(run, output, None, dry_run, insecure, upload)


def _reported(
    run: Callable[[Reporter], bool],
    output: Output,
    lines: JsonLines | None,
    dry_run: bool,
    insecure: bool,
    upload: bool,
) -> int:
    summary = Summary()
    reporter = reporters_for(summary, progress=output.progress, json_lines=lines, dry_run=dry_run)
    if insecure:
        if lines is not None:
            reporter.emit(Notice(INSECURE))
        else:
            print(f"xnatsync: warning: {INSECURE}", file=sys.stderr)
    error: XnatSyncError | None = None
    interrupted = False
    try:
        interrupted = run(reporter)
    except XnatSyncError as exc:
        error = exc
    finally:
        reporter.close()
    if output.report_path is not None:
        write_report(output.report_path, summary, error, interrupted)
    code = exit_code(summary, error, interrupted)
    if lines is not None:  # stderr stays JSON lines: the outcome is the last of them
        lines.record("Summary", report_data(summary, error, interrupted) | {"exit_code": code})
        return code
    # the summary ends a run that ran its course; a fatal error speaks for itself
    finished = error is None or isinstance(error, ProjectNotFoundError)
    if not dry_run and not (output.quiet and summary.ok) and finished:
        print(summary.render(stopped=error is not None, upload=upload), file=sys.stderr)
    if error is not None:
        raise error
    if interrupted:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
    return code
