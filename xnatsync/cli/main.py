"""``xnatsync``: parse → a command's handler → one library call → an exit code.

The exit codes are ``errors.ExitCode`` (the one table, drawn in ``xnatsync.errors``);
``errors.exit_code_for`` is the one place an error becomes one.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from xnatsync.cli.interrupt import INTERRUPTED_MESSAGE
from xnatsync.errors import XnatSyncError, exit_code_for, redact
from xnatsync.version import __version__


def build_parser() -> argparse.ArgumentParser:
    import xnatsync.emulator.cli as emulator_cli
    from xnatsync.cli.audit import add_status, add_verify
    from xnatsync.cli.demo import add_demo
    from xnatsync.cli.importcmd import add_import
    from xnatsync.cli.pull import add_pull
    from xnatsync.cli.push import add_push
    from xnatsync.cli.receive import add_receive
    from xnatsync.cli.watch import add_watch

    parser = argparse.ArgumentParser(
        prog="xnatsync",
        description="Bulk, verified, resumable data transfer for XNAT.",
        epilog="Example: xnatsync pull https://xnat.example.org --project DEMO --dest ./mirror",
    )
    parser.add_argument("--version", action="version", version=f"xnatsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_pull(sub)
    add_push(sub)
    add_import(sub)
    add_watch(sub)
    add_receive(sub)
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
    except KeyboardInterrupt as exc:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return exit_code_for(exc)
    except XnatSyncError as exc:
        print(f"xnatsync: error: {redact(str(exc))}", file=sys.stderr)
        return exit_code_for(exc)
    return code


def _raise_interrupt(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends us at once
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
