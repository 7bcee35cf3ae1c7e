"""``xnatsync receive``: its options, its log handlers and its thin handler.

A daemon: it runs until SIGTERM or SIGINT and then exits 0 (systemd's normal stop), unlike the
130 of the one-shot commands. Its output is a log (text lines, or JSON lines with
``--log-json``), not a summary.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xnatsync.cli.interrupt import run_interruptible
from xnatsync.errors import ExitCode, UsageError
from xnatsync.receive.options import (
    DEFAULT_AE_TITLE,
    MAX_ASSOCIATIONS,
    STOP_GRACE,
    DicomTimeouts,
    ReceiveOptions,
    check_ae_title,
)
from xnatsync.report import JsonLines

_T = DicomTimeouts()
RECEIVE_EXAMPLE = f"""example:
  xnatsync receive --listen 0.0.0.0:11112 --ae-title XNATSYNC --allow-ae SCANNER1 \\
      --spool /srv/xnatsync/spool

Each instance is written to SPOOL/<SOPInstanceUID>.dcm (temp, fsync, rename; a repeated
instance replaces the file) before the sender is told Success; a full or unwritable spool
answers 0xA700 Out of Resources, so the sender keeps the instance and retries. Accepted: every
storage SOP class pynetdicom knows, in every transfer syntax it knows (uncompressed, deflated,
JPEG, JPEG-LS, JPEG 2000, HTJ2K, JPEG XL, RLE, MPEG, HEVC), and C-ECHO; the data set is stored
as sent, never decoded. Without --allow-ae any calling AE title is accepted (warned at start).
Runs until SIGTERM/SIGINT, then exits 0: stores being written finish, open associations are
aborted. `xnatsync watch` sends what lands in the spool on to XNAT.

defaults: --ae-title {DEFAULT_AE_TITLE}, --max-associations {MAX_ASSOCIATIONS}, \
--acse-timeout {_T.acse:g}, --dimse-timeout {_T.dimse:g},
--network-timeout {_T.network:g} (seconds), --stop-grace {STOP_GRACE:g}
"""


def add_receive(sub: Any) -> None:
    p = sub.add_parser(
        "receive",
        help="receive DICOM over the network (C-STORE SCP) into a spool folder",
        description="A DICOM C-STORE SCP: writes each received instance whole into --spool.",
        epilog=RECEIVE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="e.g. 0.0.0.0:11112 or [::]:11112 (port 0: any free port)",
    )
    p.add_argument(
        "--spool",
        required=True,
        metavar="DIR",
        help="existing folder the instances are written into",
    )
    p.add_argument("--ae-title", default=DEFAULT_AE_TITLE, help="our AE title")
    p.add_argument(
        "--allow-ae",
        action="append",
        default=[],
        metavar="TITLE",
        help="accept only this calling AE title (repeatable)",
    )
    limits = p.add_argument_group("limits and timeouts (seconds)")
    limits.add_argument(
        "--max-associations",
        type=int,
        default=MAX_ASSOCIATIONS,
        metavar="N",
        help="senders connected at once; more are refused (transient)",
    )
    limits.add_argument(
        "--acse-timeout",
        type=float,
        default=_T.acse,
        metavar="S",
        help="wait for association messages (request, release)",
    )
    limits.add_argument(
        "--dimse-timeout",
        type=float,
        default=_T.dimse,
        metavar="S",
        help="wait for the rest of a DIMSE message once it started",
    )
    limits.add_argument(
        "--network-timeout",
        type=float,
        default=_T.network,
        metavar="S",
        help="abort an association idle this long",
    )
    limits.add_argument(
        "--stop-grace",
        type=float,
        default=STOP_GRACE,
        metavar="S",
        help="on stop, wait this long for stores being written",
    )
    rep = p.add_argument_group("logging (stderr)")
    rep.add_argument("--log-json", action="store_true", help="JSON lines, one per record")
    rep.add_argument("--quiet", "-q", action="store_true", help="warnings and errors only")
    rep.add_argument("--verbose", "-v", action="store_true", help="also one line per instance")
    p.set_defaults(handler=run_receive)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:11112")
    return host, int(port)


def options_from(args: argparse.Namespace) -> ReceiveOptions:
    host, port = parse_listen(args.listen)
    for name in ("max_associations", "acse_timeout", "dimse_timeout", "network_timeout"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.stop_grace < 0:
        raise UsageError("--stop-grace must not be negative")
    return ReceiveOptions(
        spool=Path(args.spool).absolute(),
        host=host,
        port=port,
        ae_title=check_ae_title(args.ae_title, "--ae-title"),
        allowed_aes=tuple(dict.fromkeys(check_ae_title(t, "--allow-ae") for t in args.allow_ae)),
        max_associations=args.max_associations,
        timeouts=DicomTimeouts(
            acse=args.acse_timeout, dimse=args.dimse_timeout, network=args.network_timeout
        ),
        stop_grace=args.stop_grace,
    )


class _TextLog(logging.Handler):
    """``xnatsync: …`` lines, as the other commands write their messages."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        source = "" if record.name.startswith("xnatsync") else f"{record.name}: "
        sys.stderr.write(f"xnatsync: {level}{source}{record.getMessage()}\n")


class _JsonLog(logging.Handler):
    """One JSON object per record: the record's ``event`` name and ``fields``."""

    def __init__(self, lines: JsonLines) -> None:
        super().__init__()
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        fields = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        self._lines.record(getattr(record, "event", "Log"), fields)


@contextmanager
def log_to_stderr(*, json_lines: bool, level: int) -> Iterator[None]:
    """While it lasts, xnatsync's and pynetdicom's log records, and Python warnings, go to
    stderr in this command's style (pynetdicom's and the warnings: warnings and errors only)."""
    handler = _JsonLog(JsonLines(sys.stderr.write)) if json_lines else _TextLog()
    saved = []
    logging.captureWarnings(True)  # pydicom warns of a sender's non-conformant UIDs
    others = max(level, logging.WARNING)
    for name, at in (("xnatsync", level), ("pynetdicom", others), ("py.warnings", others)):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(at)
        logger.propagate = False
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, was, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(was)
            logger.propagate = propagate


def run_receive(args: argparse.Namespace) -> int:
    options = options_from(args)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    from xnatsync.receive.run import receive  # pynetdicom: only for this command

    with log_to_stderr(json_lines=args.log_json, level=level):
        run_interruptible(lambda: receive(options))
    return ExitCode.OK  # stopped by a signal: a daemon's normal end
