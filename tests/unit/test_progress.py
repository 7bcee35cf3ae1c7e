"""Progress that tells the truth (issue 7, item 8): listing progress while sessions are still
being listed, totals marked provisional until then, and a bar even where the terminal does
not say how wide it is."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios

from xnatsync.events import ExperimentPlanned, FileDone, ListingProgress
from xnatsync.report import ProgressBars


def planned(downloads: int) -> ExperimentPlanned:
    return ExperimentPlanned("P", "E", downloads, downloads * 10, 0, 0, 0, 0)


def test_totals_are_provisional_until_every_session_is_listed() -> None:
    stream = io.StringIO()
    bars = ProgressBars(stream)
    bars.emit(ListingProgress(found=3, listed=0, complete=False))
    bars.emit(planned(2))
    bars.emit(ListingProgress(found=3, listed=1, complete=False))
    bars.emit(FileDone("k", "r", 10, "m", "downloaded"))
    during = stream.getvalue()
    bars.emit(ListingProgress(found=3, listed=3, complete=True))
    bars.close()
    after = stream.getvalue()[len(during) :]
    assert "listed 1 of 3" in during
    assert "so far" in during
    assert "listed" not in after.rsplit("\r", 1)[-1]
    assert "so far" not in after.rsplit("\r", 1)[-1]


def test_a_terminal_of_unknown_width_still_gets_a_bar() -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))  # width unknown
    try:
        with os.fdopen(slave, "w", closefd=False) as stream:
            bars = ProgressBars(stream)
            bars.emit(ListingProgress(found=1, listed=1, complete=True))
            bars.emit(planned(4))
            bars.emit(FileDone("k", "r", 10, "m", "downloaded"))
            bars.close()
        os.set_blocking(master, False)
        received = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            received += chunk
        shown = received.decode(errors="replace")
    finally:
        os.close(master)
        os.close(slave)
    assert "1/4" in shown, shown
    assert "|" in shown, shown  # the bar itself, not only the counts
