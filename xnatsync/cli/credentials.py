"""Where credentials come from, read only at the edge (the CLI), in a fixed order.

Order: ``--token-env NAME`` (an alias token ``alias:secret``), else the user from ``--user`` or
``XNATSYNC_USER`` with the password from ``XNATSYNC_PASSWORD``, else the ``~/.netrc`` entry for
the host, else a prompt when stdin is a terminal. Nothing here logs or stores a secret.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from xnatsync.errors import UsageError
from xnatsync.xnat.auth import Credentials


def resolve_login(
    url: str,
    *,
    user: str | None,
    token_env: str | None,
    env: Mapping[str, str],
    netrc_path: str | None = None,
    prompt: Callable[[str], str] | None = None,
) -> Credentials:
    """Find credentials for ``url``; raise UsageError saying what to set when there are none."""
    if token_env:
        return _from_token(env, token_env)
    user = user or env.get("XNATSYNC_USER")
    password = env.get("XNATSYNC_PASSWORD")
    if user and password:
        return Credentials(user, password)
    host = urlsplit(url).hostname or ""
    found = _from_netrc(host, netrc_path)
    if found is not None and (user is None or found.username == user):
        return found
    if prompt is not None:
        user = user or prompt("XNAT user: ")
        return Credentials(user, prompt(f"Password for {user}@{host}: "))
    raise UsageError(
        f"no credentials for {host}: set XNATSYNC_USER and XNATSYNC_PASSWORD, add a ~/.netrc "
        "entry for the host, or pass --token-env NAME with an alias token in $NAME"
    )


def _from_token(env: Mapping[str, str], name: str) -> Credentials:
    value = env.get(name)
    if not value:
        raise UsageError(f"--token-env {name}: the environment variable {name} is not set")
    alias, sep, secret = value.partition(":")
    if not sep or not alias or not secret:
        raise UsageError(f"--token-env {name}: expected 'alias:secret' in ${name}")
    return Credentials(alias, secret)


def _from_netrc(host: str, path: str | None) -> Credentials | None:
    path = path or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.exists(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        # NetrcParseError's text can quote the offending line, which may hold a password.
        raise UsageError(f"cannot use {path}: {type(exc).__name__}") from None
    if entry is None or not entry[0] or not entry[2]:
        return None
    return Credentials(entry[0], entry[2])
