"""The command line: parse → settings → one call into the library → an exit code.

Exit codes (the one table; README repeats it):

====  ======================================================================================
0     every planned file is present and verified
1     some files failed (the rest are done; failures are listed)
2     usage or configuration error, or the destination is locked by another run
3     authentication or permission error (also: the server's TLS certificate is not trusted)
4     local disk or journal error (full, read-only, permission)
130   interrupted (Ctrl-C / SIGTERM); what was verified stays done
====  ======================================================================================
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from xnatsync import __version__
from xnatsync.errors import XnatSyncError, redact

EXIT_OK = 0
EXIT_FAILED_FILES = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_DISK = 4
EXIT_INTERRUPTED = 130


def exit_code_for(error: BaseException) -> int:
    """The one place errors become exit codes."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, XnatSyncError):
        return error.exit_code
    return EXIT_FAILED_FILES


def build_parser() -> argparse.ArgumentParser:
    import xnatsync.emulator.cli as emulator_cli
    from xnatsync.commands import add_pull, add_status, add_verify
    from xnatsync.demo import add_demo

    parser = argparse.ArgumentParser(
        prog="xnatsync",
        description="Bulk, verified, resumable data transfer for XNAT.",
        epilog="Example: xnatsync pull https://xnat.example.org --project DEMO --dest ./mirror",
    )
    parser.add_argument("--version", action="version", version=f"xnatsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_pull(sub)
    add_status(sub)
    add_verify(sub)
    add_demo(sub)
    emu = sub.add_parser(
        "emulator",
        help="run the XNAT emulator",
        description="Serve an emulated XNAT REST API (for tests, demos and offline tooling).",
        epilog="Example: xnatsync emulator --port 8080 --seed demo",
    )
    emulator_cli.add_arguments(emu)
    emu.set_defaults(handler=emulator_cli.run, own_signals=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "own_signals", False):
        # SIGTERM ends a run like Ctrl-C: cancel, clean temps, flush the journal, exit 130.
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("xnatsync: interrupted; verified files stay done, rerun to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    except XnatSyncError as exc:
        print(f"xnatsync: error: {redact(str(exc))}", file=sys.stderr)
        return exit_code_for(exc)
    return code


def _raise_interrupt(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends us at once
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
