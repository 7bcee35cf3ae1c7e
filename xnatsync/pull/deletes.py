"""Deletes, planned once at the end of a run, for journal rows its listings no longer hold (pure).

Deletes happen only if asked (``delete``), only after a complete, validated listing
(``listing_complete``), and only up to ``max_delete`` (default ``default_max_delete``: 10 % of
the local files, at least 10). Over the cap, *no* file is deleted and ``delete_refused`` says
why. A delete moves the file to ``.xnatsync/trash/<run-id>/<relpath>`` unless ``purge``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Protocol

from xnatsync.errors import UnsafePathError
from xnatsync.paths import safe_relpath
from xnatsync.pull.plan import Delete, Plan, PlanError, PlanOptions

TRASH_DIR = PurePosixPath(".xnatsync/trash")


def default_max_delete(total_local: int) -> int:
    """The delete cap when none is given: 10 % of the local files, but at least 10."""
    return max(10, total_local // 10)


class Deletable(Protocol):
    """What a delete candidate must tell: ``LocalFile`` and ``journal.Entry`` both do."""

    @property
    def key(self) -> str: ...
    @property
    def relpath(self) -> str: ...
    @property
    def size(self) -> int | None: ...


def build_delete_plan(
    candidates: Iterable[Deletable], total_local: int, options: PlanOptions
) -> Plan:
    """Plan deletions of unlisted files: all of them within the cap, or none with a reason."""
    if not options.delete:
        return Plan(delete_refused="deletion not requested")
    if not options.listing_complete:
        reason = "the listing was incomplete or failed validation; nothing deleted"
        return Plan(delete_refused=reason)
    cap = options.max_delete if options.max_delete is not None else default_max_delete(total_local)
    deletes: list[Delete] = []
    errors: list[PlanError] = []
    for cand in candidates:
        if len(deletes) >= cap:
            return Plan(delete_refused=_over_cap(cap, total_local, options))
        try:
            rel = safe_relpath(cand.relpath, f"journal row {cand.key}")
        except UnsafePathError as exc:
            errors.append(PlanError(cand.key, cand.relpath, str(exc)))
            continue
        trash = None if options.purge else TRASH_DIR / str(options.run_id) / rel
        deletes.append(Delete(cand.key, rel, cand.size, trash))
    return Plan(deletes=tuple(deletes), errors=tuple(errors))


def _over_cap(cap: int, total_local: int, options: PlanOptions) -> str:
    rule = "--max-delete" if options.max_delete is not None else "10% of local files, at least 10"
    return (
        f"more than {cap} files would be deleted ({rule}; {total_local} local files); "
        "nothing deleted. Check the listing, or raise --max-delete."
    )
