"""How a pull's outcome is told: terminal options, the report JSON, the exit code, and (with
``--log-json``) the library's log records as JSON lines beside its events."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xnatsync.errors import ExitCode, LocalDiskError, XnatSyncError, exit_code_for, redact
from xnatsync.report import JsonLines, Summary


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
