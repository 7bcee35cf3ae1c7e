"""xnatsync: bulk, verified, resumable data transfer for XNAT.

The public face for Python callers (a notebook, a pipeline, an orchestrator's task): the async
entry points with their option values, the events they report and the errors they raise. A run
needs no CLI; the ``xnatsync`` command is a thin caller of the same coroutines::

    import anyio
    import xnatsync

    async def main() -> None:
        options = xnatsync.PullOptions(
            url="https://xnat.example.org",
            projects=("DEMO",),
            dest=Path("/data/mirror"),
            credentials=xnatsync.Credentials("user", "password"),
        )
        summary = await xnatsync.pull(options)
        print(summary.render())

    anyio.run(main)

Only ``pull`` exists yet; ``push``, ``import_studies`` and ``watch`` will join it here.
``xnatsync.pull`` is the coroutine: the front-end's package is reached by full module paths
(``from xnatsync.pull.plan import Plan``).
"""

from xnatsync.errors import (
    AuthError,
    ExitCode,
    JournalError,
    LocalDiskError,
    LockedError,
    RemoteError,
    UsageError,
    XnatSyncError,
)
from xnatsync.events import (
    Event,
    ExperimentPlanned,
    Fanout,
    FileDeleted,
    FileDone,
    FileFailed,
    FileProgress,
    FileRetry,
    FileStarted,
    ListingFailed,
    Notice,
    PlanShown,
    Reporter,
)
from xnatsync.layout import Layout, parse_layout
from xnatsync.limits import Limits, Timeouts
from xnatsync.pull.batching import BatchPolicy
from xnatsync.pull.options import PullOptions
from xnatsync.pull.run import pull
from xnatsync.pull.selection import Selection
from xnatsync.report import Summary
from xnatsync.retry import RetryPolicy
from xnatsync.version import __version__
from xnatsync.xnat.auth import Credentials

__all__ = [
    "AuthError",
    "BatchPolicy",
    "Credentials",
    "Event",
    "ExitCode",
    "ExperimentPlanned",
    "Fanout",
    "FileDeleted",
    "FileDone",
    "FileFailed",
    "FileProgress",
    "FileRetry",
    "FileStarted",
    "JournalError",
    "Layout",
    "Limits",
    "ListingFailed",
    "LocalDiskError",
    "LockedError",
    "Notice",
    "PlanShown",
    "PullOptions",
    "RemoteError",
    "Reporter",
    "RetryPolicy",
    "Selection",
    "Summary",
    "Timeouts",
    "UsageError",
    "XnatSyncError",
    "__version__",
    "parse_layout",
    "pull",
]
