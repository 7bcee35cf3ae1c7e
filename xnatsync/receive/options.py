"""What a receiver is told: where to listen, whom to accept, where to write, how long to wait.

A frozen value built at the edge (the CLI, or the ``watch`` daemon from its own settings); the
receiver reads nothing else. The defaults are the ones ``xnatsync receive --help`` and the
README state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xnatsync.errors import UsageError

DEFAULT_AE_TITLE = "XNATSYNC"
MAX_ASSOCIATIONS = 10  # senders connected at once; one more is refused "local limit exceeded"
STOP_GRACE = 10.0  # seconds a stop waits for stores being written before aborting associations


@dataclass(frozen=True, slots=True)
class DicomTimeouts:
    """pynetdicom's timeouts, in seconds (``None``: wait for ever, never the default).

    * ``acse``: for association messages (the request's answer, a release).
    * ``dimse``: for the parts of a DIMSE message once it started (a C-STORE's data set).
    * ``network``: an association idle this long is aborted, so a sender that connected and
      went silent does not hold one of the ``max_associations`` slots.
    """

    acse: float | None = 30.0
    dimse: float | None = 30.0
    network: float | None = 60.0


@dataclass(frozen=True, slots=True)
class ReceiveOptions:
    """A C-STORE receiver writing into ``spool``."""

    spool: Path
    host: str = "127.0.0.1"
    port: int = 11112  # 0: any free port (the receiver says which)
    ae_title: str = DEFAULT_AE_TITLE
    allowed_aes: tuple[str, ...] = ()  # calling AE titles accepted; empty: any (warned)
    max_associations: int = MAX_ASSOCIATIONS
    timeouts: DicomTimeouts = field(default_factory=DicomTimeouts)
    stop_grace: float = STOP_GRACE


def check_ae_title(title: str, what: str = "AE title") -> str:
    """An AE title as DICOM allows it (1-16 printable ASCII characters, no backslash; leading
    and trailing spaces are not significant), stripped; else a ``UsageError``."""
    stripped = title.strip()
    printable = all(" " <= c <= "~" for c in stripped)
    if not stripped or len(stripped) > 16 or "\\" in stripped or not printable:
        raise UsageError(f"{what} {title!r}: 1 to 16 printable ASCII characters, no backslash")
    return stripped
