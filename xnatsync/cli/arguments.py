"""Option groups every transfer command has (pull, push, import): credentials and reporting."""

from __future__ import annotations

import argparse


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
