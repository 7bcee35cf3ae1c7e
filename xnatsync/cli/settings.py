"""Settings files (TOML) and the option values only the command line parses (rates).

Only the CLI reads files and the environment; everything below it receives frozen values
(``limits.Limits``, ``limits.Timeouts``, ``retry.RetryPolicy``, a front-end's options).
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping
from typing import Any

from xnatsync.errors import UsageError

_SCALARS: dict[str, type | tuple[type, ...]] = {
    "url": str,
    "dest": str,
    "user": str,
    "token_env": str,
    "since": str,
    "layout": str,
    "dry_run": bool,
    "delete": bool,
    "max_delete": int,
    "no_trash": bool,
    "concurrency": int,
    "listings": int,
    "tps_limit": (int, float),
    "bwlimit": str,
    "journal": str,
    "report": str,
    "log_json": bool,
    "progress": bool,
    "no_progress": bool,
    "quiet": bool,
    "fsync": bool,
    "no_zip": bool,
    "adopt_by_size": bool,
    "changed_only": bool,
    "full_every": (int, float),
    "attempts": int,
    "read_timeout": (int, float),
    "connect_timeout": (int, float),
    "ca_bundle": str,
    "insecure": bool,
    "no_assessors": bool,
    "no_session_resources": bool,
    "no_subject_resources": bool,
    "no_project_resources": bool,
    "source": str,  # push
    "tree_project": str,  # push
    "overwrite": bool,  # push
    "subject_label": str,  # import
    "session_label": str,  # import
    "session": str,  # import
    "state": str,  # import
    "follow_symlinks": bool,  # import
    "part_size": str,  # import
    "to": str,  # import
    "shard": str,  # pull: K/N or auto
    "shards": int,  # pull
    "journal_dir": str,  # pull
    "delete_only": bool,  # pull
    "total_concurrency": int,  # pull
    "spool": str,  # watch
    "quiet_seconds": (int, float),  # watch
    "settle_seconds": (int, float),  # watch
    "after_upload": str,  # watch
    "poll": bool,  # watch
    "poll_seconds": (int, float),  # watch
    "rescan_seconds": (int, float),  # watch
    "health": str,  # watch
    "max_backlog_age": (int, float),  # watch
    "max_unreachable": (int, float),  # watch
    "stop_grace": (int, float),  # watch, receive
    "listen": str,  # receive, watch
    "ae_title": str,  # receive, watch
    "max_associations": int,  # receive, watch
    "acse_timeout": (int, float),  # receive, watch
    "dimse_timeout": (int, float),  # receive, watch
    "network_timeout": (int, float),  # receive, watch
    "verbose": bool,  # receive
}
_LISTS = ("project", "subject", "experiment", "xsi_type", "scan_type", "resource", "allow_ae")
_ONE_OR_MORE = ("source", "search", "search_xml")  # a string or a list of strings


def load_settings(path: str, command: str) -> dict[str, object]:
    """Read a TOML settings file: top-level keys, then the ``[command]`` table over them.

    Keys are the long option names (``max-delete`` or ``max_delete``). Unknown keys and wrong
    types are errors, so a typo in a cron job's config fails loudly instead of being ignored.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path} is not valid TOML: {exc}") from exc
    section = data.pop(command, {})
    if not isinstance(section, dict):
        raise UsageError(f"config {path}: [{command}] must be a table")
    merged = {k: v for k, v in data.items() if not isinstance(v, dict)}
    merged.update(section)
    return {_check_key(path, k, v): v for k, v in merged.items()}


_OLD_NAMES = {"retries": "attempts"}


def _check_key(path: str, key: str, value: object) -> str:
    name = key.replace("-", "_")
    name = _OLD_NAMES.get(name, name)
    if name in _ONE_OR_MORE and isinstance(value, str):
        return name
    if name in _LISTS or name in _ONE_OR_MORE:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not ok:
            raise UsageError(f"config {path}: {key} must be a list of strings")
        return name
    expected = _SCALARS.get(name)
    if expected is None:
        raise UsageError(f"config {path}: unknown setting {key!r}")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UsageError(f"config {path}: {key} has the wrong type ({type(value).__name__})")
    return name


def parse_rate(text: str) -> float:
    """``10M``, ``512K``, ``1.5G`` or plain bytes per second → bytes per second."""
    return _amount(text.strip().upper().removesuffix("/S"), text, "rate")


def parse_size(text: str) -> int:
    """``500M``, ``2G`` or plain bytes → bytes."""
    return int(_amount(text.strip().upper(), text, "size"))


def _amount(body: str, text: str, what: str) -> float:
    """A positive number of bytes with an optional K/M/G (powers of 1024) and B."""
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
    body = body.removesuffix("B")
    unit = body[-1:] if body[-1:] in "KMG" else ""
    try:
        value = float(body[: len(body) - len(unit)]) * units[unit]
    except ValueError:
        raise UsageError(f"not a {what}: {text!r} (examples: 500K, 20M, 1G)") from None
    if value <= 0:
        raise UsageError(f"a {what} must be positive: {text!r}")
    return value


def merged(args: argparse.Namespace, command: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A command's settings: its defaults, then ``--config``'s file (its ``[command]`` table
    over the top-level keys), then what the command line gave."""
    settings = dict(defaults)
    if args.config:
        settings.update(load_settings(args.config, command))
    settings.update({k: v for k, v in vars(args).items() if v is not None and k != "handler"})
    return settings


def single(settings: Mapping[str, Any], name: str, command: str) -> str:
    """A setting the command takes once, though a config file may spell it as a list (as
    pull's ``project`` is)."""
    value = settings[name]
    if isinstance(value, list):
        if len(value) != 1:
            raise UsageError(f"{command} takes one {name.replace('_', '-')}, not {value!r}")
        value = value[0]
    return str(value)
