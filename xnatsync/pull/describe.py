"""The ``--dry-run`` text of a plan: one line per action (skips only counted), then a summary.

Pure: a plan in, text out. The dry run emits it as ``PlanShown`` events; a reporter prints them.
"""

from __future__ import annotations

from xnatsync.pull.plan import Download, Plan


def format_plan(plan: Plan) -> str:
    """The ``--dry-run`` text: one line per action (skips only counted), then the summary."""
    lines = [
        f"download {d.kind.value:<8} {_size(d.remote.size):>9}  {d.relpath}" for d in plan.downloads
    ]
    zips: list[tuple[str, tuple[Download, ...]]] = [(z.uri, z.downloads) for z in plan.scan_zips]
    zips += [(b.resource, b.downloads) for b in plan.batches]
    for uri, downloads in zips:
        size = _size(sum(d.remote.size or 0 for d in downloads))
        lines.append(f"zip      {len(downloads):>4} files {size:>9}  {uri}")
        lines += [f"  {d.kind.value:<8} {_size(d.remote.size):>9}  {d.relpath}" for d in downloads]
    lines += [f"verify            {_size(v.expected_size):>9}  {v.current}" for v in plan.verifies]
    lines += [f"move                         {m.src} -> {m.dst}" for m in plan.moves]
    for d in plan.deletes:
        how = "trash" if d.trash is not None else "purge"
        lines.append(f"delete   {how:<8} {_size(d.size):>9}  {d.relpath}")
    lines += [f"error    {e.key}: {e.reason}" for e in plan.errors]
    if plan.delete_refused:
        lines.append(f"deletes refused: {plan.delete_refused}")
    s = plan.summary()
    lines.append(
        f"summary: {s.downloads} to download ({_size(s.download_bytes)}"
        + (f", {s.unknown_size} of unknown size" if s.unknown_size else "")
        + (f", {s.batched} of them in {s.batches} zips" if s.batches else "")
        + f"), {s.verifies} to verify, {s.moves} to move, {s.skips} up to date "
        f"({_size(s.skip_bytes)}), {s.deletes} to delete ({_size(s.delete_bytes)}), "
        f"{s.errors} errors, {s.unlisted} unlisted"
    )
    return "\n".join(lines)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
