"""``--changed-only``: which owners a nightly run lists in detail, by XNAT's own dates. Pure.

Each experiment and subject row of a project's listing carries the server's ``insert_date`` and
``last_modified`` (server local time, ``YYYY-MM-DD HH:MM:SS.fff``, no zone: xnat-api §3.2,
§3.3). When an owner's files are all mirrored, the journal keeps those dates beside its listing
fingerprint. A changed-only run lists an owner in detail only if its dates differ from the kept
ones, or none are kept (new, shared in, or not mirrored whole: a file that failed keeps the
owner's old dates out). The project's own resources are always listed.

The cut-off is per owner and compared for equality with the server's own text, never against
our clock: clock skew, the server's time zone and daylight saving do not matter, and a date that
becomes visible late (a transaction that committed after the listing that mirrored the owner)
still differs from the one kept. No margin is needed.

The mode applies only after a complete run (every listing answered, no file failed) recorded
the project's ``Cutoff``: the selection and layout it vouches for (``shape_of``; another one lists
in full) and when the last full listing ran. What it cannot see: XNAT may not move a session's
dates when only its files change (§10.4), so ``full_every`` forces a full listing periodically.
A run with ``--delete`` always lists in full (``decide``), so deletes keep following the server.

Files changed without a session date moving are caught for image sessions through XNAT's
``recent=`` listing (xnat-api §3.3.2): each file upload or removal through the REST API is a
workflow on the session, and the newest workflow date is kept with the session's dates. The
window reaches back to the last complete run (``recent_window``); a session outside it keeps
the workflow date kept for it (``Since.settle``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xnatsync.pull.selection import Selection

DAY = 86400.0
DEFAULT_FULL_EVERY_DAYS = 7.0


@dataclass(frozen=True, slots=True)
class ChangedOnly:
    """The mode's settings: a full listing every ``full_every`` seconds (0: every run)."""

    full_every: float = DEFAULT_FULL_EVERY_DAYS * DAY


@dataclass(frozen=True, slots=True)
class Cutoff:
    """What the journal keeps per project after a complete run: the shape it was made with,
    the newest server date of its listing (for messages), and when (our clock) the last full
    listing and that run began."""

    shape: str
    stamp: str
    full_at: float
    done_at: float  # our clock, when the run that recorded it started


def stamps_of(insert_date: str, last_modified: str, workflow_date: str = "") -> str:
    """An owner's dates as one value to keep and compare ("" when the server gives none).
    ``workflow_date`` is the session's newest workflow as ``recent=`` lists it ("" when the
    session is not in that listing's window: unknown, not absent)."""
    if not (insert_date or last_modified):
        return ""
    return f"{insert_date}|{last_modified}|{workflow_date}"


@dataclass(frozen=True, slots=True)
class Since:
    """One project's filter for a changed-only run: the dates kept for each owner."""

    kept: Mapping[str, str]

    def settle(self, owner_id: str, stamps: str) -> str:
        """``stamps`` with an unknown workflow date taken from the kept ones when the
        session's own dates are the kept ones (it left ``recent=``'s window unchanged)."""
        kept = self.kept.get(owner_id, "")
        own, _, workflow = stamps.rpartition("|")
        if stamps and not workflow and kept.rpartition("|")[0] == own:
            return kept
        return stamps

    def wants(self, owner_id: str, stamps: str) -> bool:
        """List this owner in detail: no dates from the server, none kept, or different ones
        (``stamps`` settled)."""
        return not stamps or self.kept.get(owner_id) != stamps


RECENT_LIMIT = 20_000  # rows asked of recent=; a full answer may be cut short: list in full


def recent_window(since: float, now: float) -> tuple[int, int]:
    """(days, limit) for ``/data/experiments?recent=`` covering ``since`` (our clock) with a
    day to spare. XNAT ignores both unless neither is 60 (xnat-api §3.3.2)."""
    days = max(1, math.ceil((now - since) / DAY) + 1)
    return (61 if days == 60 else days), RECENT_LIMIT


def workflow_dates(rows: Iterable[Mapping[str, str]], limit: int) -> dict[str, str] | None:
    """Session ID → its newest workflow date, from ``recent=``'s rows; None if the answer
    may have been cut at ``limit`` (then it cannot show that a session is not there)."""
    table = list(rows)
    if len(table) >= limit:
        return None
    return {r["id"]: r.get("workflow_date", "") for r in table if r.get("id")}


def newest(stamps: Iterable[str]) -> str:
    """The latest of ``stamps`` as the server wrote them ("" if none). XNAT's timestamps
    (``YYYY-MM-DD HH:MM:SS.f``, trailing zeros trimmed) sort as text in time order."""
    return max(filter(None, stamps), default="")


def shape_of(selection: Selection, layout: str) -> str:
    """A stable digest of what a cut-off vouches for: the whole selection and the layout."""
    s = selection
    parts = [
        layout,
        *(",".join(sorted(v)) for v in (s.subjects, s.experiments, s.xsi_types, s.resources)),
        ",".join(s.scan_types),
        s.since.isoformat() if s.since else "",
        repr((s.assessors, s.session_resources, s.subject_resources, s.project_resources)),
    ]
    if s.shard is not None:
        parts.append(f"shard:{s.shard}")
    if s.search_ids is not None:
        parts.append("search:" + ",".join(sorted(s.search_ids)))
    text = "\n".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decide(
    mode: ChangedOnly | None, record: Cutoff | None, shape: str, now: float, *, delete: bool
) -> tuple[bool, str]:
    """(whether this project is listed by change, and why or why not, in words)."""
    if mode is None:
        return False, ""
    if delete:
        return False, "--delete lists every session, so deletes follow the server"
    if record is None:
        return False, "no complete run recorded yet: listing every session"
    if record.shape != shape:
        return (
            False,
            "selection or layout differs from the last complete run: listing every session",
        )
    age = now - record.full_at
    if age >= mode.full_every:
        days, every = age / DAY, mode.full_every / DAY
        return False, (
            f"last full listing {days:.1f} days ago (--full-every {every:g}): listing every session"
        )
    newest = f" (newest server date then: {record.stamp})" if record.stamp else ""
    return True, (
        "listing the sessions and subjects whose server dates changed since the last "
        f"complete run{newest}"
    )
