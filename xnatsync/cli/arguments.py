"""What the commands' parsers share: the command itself (its server URL and ``--config``), and
the option groups every transfer command has (credentials, reporting)."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(
    sub: Any, name: str, *, help: str, description: str, epilog: str, server: bool = True
) -> argparse.ArgumentParser:
    """The subcommand ``name`` with its examples kept as written, the server's URL (unless
    ``server`` is False) and ``--config`` (the TOML table named after the command)."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    if server:
        p.add_argument("url", nargs="?", help="XNAT base URL, e.g. https://xnat.example.org")
    p.add_argument("--config", help=f"TOML file with any of these options ([{name}] table)")
    return p


def add_credentials(parser: argparse.ArgumentParser) -> None:
    auth = parser.add_argument_group("credentials")
    auth.add_argument("--user", help="XNAT user (else $XNATSYNC_USER, ~/.netrc, or a prompt)")
    auth.add_argument("--token-env", help="name of an environment variable holding alias:secret")
    auth.add_argument("--ca-bundle", help="PEM file of CAs to trust for HTTPS")
    auth.add_argument("--insecure", action="store_true", default=None, help="skip TLS checks")


def add_reporting(parser: argparse.ArgumentParser) -> None:
    rep = parser.add_argument_group("reporting")
    rep.add_argument("--report", help="write a JSON summary here")
    rep.add_argument("--log-json", action="store_true", default=None, help="JSON-lines on stderr")
    rep.add_argument("--progress", action="store_true", default=None, help="bars even if no tty")
    rep.add_argument("--no-progress", action="store_true", default=None, help="no progress bars")
    rep.add_argument("--quiet", "-q", action="store_true", default=None, help="errors only")
