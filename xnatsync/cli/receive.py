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

from xnatsync.cli.arguments import add_command
from xnatsync.cli.interrupt import run_interruptible
from xnatsync.cli.settings import merged
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
RECEIVE_EXAMPLE = f"""examples:
  xnatsync receive --listen 0.0.0.0:11112 --ae-title XNATSYNC --allow-ae SCANNER1 \\
      --spool /srv/xnatsync/spool
  xnatsync receive --config configs/receive.toml     # the same from a file ([receive] table)

Each instance is written to SPOOL/<SOPInstanceUID>.dcm (temp, fsync, rename; a repeated
instance replaces the file) before the sender is told Success; a full or unwritable spool
answers 0xA700 Out of Resources, so the sender keeps the instance and retries. Accepted: every
storage SOP class pynetdicom knows, in every transfer syntax it knows (uncompressed, deflated,
JPEG, JPEG-LS, JPEG 2000, HTJ2K, JPEG XL, RLE, MPEG, HEVC), and C-ECHO; the data set is stored
as sent, never decoded. Without --allow-ae any calling AE title is accepted (warned at start).
Runs until SIGTERM/SIGINT, then exits 0: stores being written finish, open associations are
aborted. `xnatsync watch` sends what lands in the spool on to XNAT (`watch --listen` runs this
receiver inside the daemon). Settings: command line over --config's [receive] table (keys are
the long option names: listen, ae_title, allow_ae = [...], max_associations, ...) over these
defaults.

defaults: --ae-title {DEFAULT_AE_TITLE}, --max-associations {MAX_ASSOCIATIONS}, \
--acse-timeout {_T.acse:g}, --dimse-timeout {_T.dimse:g},
--network-timeout {_T.network:g} (seconds), --stop-grace {STOP_GRACE:g}
"""

# what the receiver needs besides its spool, for `receive` and for `watch --listen`
RECEIVER_DEFAULTS: dict[str, Any] = {
    "ae_title": DEFAULT_AE_TITLE, "allow_ae": [], "max_associations": MAX_ASSOCIATIONS,
    "acse_timeout": _T.acse, "dimse_timeout": _T.dimse, "network_timeout": _T.network,
}  # fmt: skip
DEFAULTS: dict[str, Any] = RECEIVER_DEFAULTS | {"stop_grace": STOP_GRACE}


def add_receive(sub: Any) -> None:
    p = add_command(
        sub, "receive",
        help="receive DICOM over the network (C-STORE SCP) into a spool folder",
        description="A DICOM C-STORE SCP: writes each received instance whole into --spool.",
        epilog=RECEIVE_EXAMPLE, server=False,
    )  # fmt: skip
    p.add_argument("--spool", metavar="DIR", help="existing folder the instances are written into")
    add_receiver_arguments(p, p.add_argument_group("limits and timeouts (seconds)"))
    p.set_defaults(handler=run_receive)


def add_receiver_arguments(p: Any, limits: Any, *, watch: bool = False) -> None:
    """--listen, the AE titles, the limits and timeouts (``receive``'s, and ``watch``'s for
    ``--listen``; every default is None so that a --config file's value is not overridden)."""
    listen = (
        "also receive DICOM (C-STORE) into --spool on HOST:PORT" if watch else "where to listen"
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"{listen}, e.g. 0.0.0.0:11112 or [::]:11112 (port 0: any free port)",
    )
    p.add_argument("--ae-title", help=f"our AE title ({DEFAULT_AE_TITLE})")
    p.add_argument(
        "--allow-ae",
        action="append",
        metavar="TITLE",
        help="accept only this calling AE title (repeatable; default: any, warned)",
    )
    limits.add_argument(
        "--max-associations",
        type=int,
        metavar="N",
        help=f"senders connected at once; more are refused, transient ({MAX_ASSOCIATIONS})",
    )
    limits.add_argument(
        "--acse-timeout",
        type=float,
        metavar="S",
        help=f"wait for association messages, request and release ({_T.acse:g})",
    )
    limits.add_argument(
        "--dimse-timeout",
        type=float,
        metavar="S",
        help=f"wait for the rest of a DIMSE message once it started ({_T.dimse:g})",
    )
    limits.add_argument(
        "--network-timeout",
        type=float,
        metavar="S",
        help=f"abort an association idle this long ({_T.network:g})",
    )
    if not watch:  # watch's --stop-grace is its sends'; its receiver stops in STOP_GRACE
        limits.add_argument(
            "--stop-grace",
            type=float,
            metavar="S",
            help=f"on stop, wait this long for stores being written ({STOP_GRACE:g})",
        )
        rep = p.add_argument_group("logging (stderr)")
        rep.add_argument(
            "--log-json", action="store_true", default=None, help="JSON lines, one per record"
        )
        rep.add_argument(
            "--quiet", "-q", action="store_true", default=None, help="warnings and errors only"
        )
        rep.add_argument(
            "--verbose", "-v", action="store_true", default=None, help="also one line per instance"
        )


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:11112")
    return host, int(port)


def receiver_options(
    settings: dict[str, Any], spool: Path, stop_grace: float = STOP_GRACE
) -> ReceiveOptions:
    """A receiver's options from merged settings (``RECEIVER_DEFAULTS`` and ``listen``)."""
    if not settings.get("listen"):
        raise UsageError("receive needs --listen HOST:PORT (or 'listen' in --config)")
    host, port = parse_listen(str(settings["listen"]))
    for name in ("max_associations", "acse_timeout", "dimse_timeout", "network_timeout"):
        if settings[name] <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if stop_grace < 0:
        raise UsageError("--stop-grace must not be negative")
    allowed = settings["allow_ae"]
    return ReceiveOptions(
        spool=spool.absolute(),
        host=host,
        port=port,
        ae_title=check_ae_title(str(settings["ae_title"]), "--ae-title"),
        allowed_aes=tuple(dict.fromkeys(check_ae_title(t, "--allow-ae") for t in allowed)),
        max_associations=int(settings["max_associations"]),
        timeouts=DicomTimeouts(
            acse=float(settings["acse_timeout"]),
            dimse=float(settings["dimse_timeout"]),
            network=float(settings["network_timeout"]),
        ),
        stop_grace=stop_grace,
    )


def options_from(settings: dict[str, Any]) -> ReceiveOptions:
    """``receive``'s options from its merged settings (``merged(args, "receive", DEFAULTS)``)."""
    if not settings.get("spool"):
        raise UsageError("receive needs --spool DIR (or 'spool' in --config)")
    return receiver_options(settings, Path(settings["spool"]), float(settings["stop_grace"]))


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
    settings = merged(args, "receive", DEFAULTS)
    options = options_from(settings)
    quiet, verbose = settings.get("quiet"), settings.get("verbose")
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    from xnatsync.receive.run import receive  # pynetdicom: only for this command

    with log_to_stderr(json_lines=bool(settings.get("log_json")), level=level):
        run_interruptible(lambda: receive(options))
    return ExitCode.OK  # stopped by a signal: a daemon's normal end
