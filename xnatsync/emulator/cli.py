"""Command line of the emulator: `xnatsync emulator …` (wired by the main CLI) and
`python -m xnatsync.emulator …`.

The first stdout line is `XNAT emulator at http://HOST:PORT` (flushed, the real port when
`--port 0`); the process then serves until SIGINT/SIGTERM and exits 0.

Example::

    python -m xnatsync.emulator --port 8080 --seed demo
    python -m xnatsync.emulator --root /tmp/x --seed synthetic --project BIG --subjects 10 \\
        --sessions 2 --scans 5 --files 100 --file-size 262144 --faults 'seed=1,reset=0.01'
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import pathlib
import signal
import subprocess
import sys

from xnatsync.emulator.faults import Faults
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.emulator.xnat_version import DEFAULT_VERSION, XnatVersion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the emulator command."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port, 0 = any free (default 8080)")
    parser.add_argument("--root", type=pathlib.Path, help="archive directory (kept); default temp")
    parser.add_argument("--seed", choices=["demo", "synthetic"], help="seed data to create")
    parser.add_argument("--user", default="admin", help="administrator name (default admin)")
    parser.add_argument("--password", default="admin", help="its password (default admin)")
    parser.add_argument(
        "--faults", default="",
        help="faults and server-cost switches, e.g. 'reset=0.05,stream=25MB/s,time:file=0.02' "
        "(grammar: xnatsync/emulator/faults.py; default none)",
    )  # fmt: skip
    parser.add_argument(
        "--session-timeout", type=float, default=900.0, help="login session idle seconds (900)"
    )
    parser.add_argument("--site-id", default="XNAT", help="site ID (accession prefix, realm)")
    parser.add_argument(
        "--xnat-version", default=DEFAULT_VERSION,
        help=f"XNAT version to answer as, e.g. 1.7.6 (default {DEFAULT_VERSION})",
    )  # fmt: skip
    parser.add_argument(
        "--session-idle-seconds",
        type=float,
        default=300.0,
        help="idle seconds before a received prearchive session is built (default 300, XNAT's)",
    )
    parser.add_argument(
        "--no-checksums", dest="checksums", action="store_false",
        help="catalog entries get no MD5 digest (XNAT's `checksums` site setting off)",
    )  # fmt: skip
    synth = parser.add_argument_group("synthetic seed")
    synth.add_argument("--project", default="SYNTH")
    synth.add_argument("--subjects", type=int, default=2)
    synth.add_argument("--sessions", type=int, default=1, help="per subject")
    synth.add_argument("--scans", type=int, default=2, help="per session")
    synth.add_argument("--files", type=int, default=4, help="per scan")
    synth.add_argument("--file-size", type=int, default=64 * 1024, help="bytes")


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    """The settings the parsed arguments describe (validates the fault SPEC and the root)."""
    Faults(args.faults)
    try:
        XnatVersion.parse(args.xnat_version)
    except ValueError as exc:
        raise ValueError(f"--xnat-version: {exc}") from exc
    if not args.session_idle_seconds >= 0:
        raise ValueError(f"--session-idle-seconds {args.session_idle_seconds} must be >= 0")
    if args.root is not None and args.root.exists() and not args.root.is_dir():
        raise ValueError(f"--root {args.root} is not a directory")
    synthetic = SyntheticSpec(
        args.project, args.subjects, args.sessions, args.scans, args.files, args.file_size
    )
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        root=args.root,
        admin_user=args.user,
        admin_password=args.password,
        site_id=args.site_id,
        session_timeout=args.session_timeout,
        seed=args.seed or "",
        synthetic=synthetic,
        faults=args.faults,
        xnat_version=args.xnat_version,
        session_idle_seconds=args.session_idle_seconds,
        checksums=args.checksums,
    )


BANNER = "XNAT emulator at "
_BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def spawn(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m xnatsync.emulator --port 0 ARGS`` as its own process; return it and its
    URL (read from its first line). Its stderr is discarded; stop it with ``terminate()``."""
    cmd = [sys.executable, "-m", "xnatsync.emulator", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(BANNER):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the emulator did not start (it said {line!r})")
    return proc, line.removeprefix(BANNER)


async def serve(config: EmulatorConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    # imported here so that `xnatsync pull` does not pay for the server's imports (pydicom…)
    from xnatsync.emulator.server import run_emulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with run_emulator(config) as emulator:
        print(f"{BANNER}{emulator.url}", flush=True)  # tools read this first line: keep it
        if config.admin_password == "admin" and config.admin_user == "admin":
            logins = ", ".join(f"{u.username}/{u.password}" for u in config.users())
            print(f"demo logins: {logins} (the first is the administrator)", flush=True)
        print(f"seeded in {emulator.seed_seconds:.3f} s", file=sys.stderr, flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Run the emulator command; 0 after a signal, 2 on bad settings."""
    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"xnatsync emulator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config))
    except OSError as exc:  # the port is taken, the address is not ours, the root unwritable
        reason = exc.strerror or str(exc)
        where = f"{config.host}:{config.port}" if exc.errno in _BIND_ERRNOS else config.root
        print(f"xnatsync emulator: cannot serve on {where}: {reason}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m xnatsync.emulator`."""
    parser = argparse.ArgumentParser(
        prog="python -m xnatsync.emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
