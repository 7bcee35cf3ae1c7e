"""``watch``: the daemon. Spool events and scans → looks until settled → header reads →
studies complete after their quiet period → sent, checked, journaled → after-upload.

One task group owns every task:

* ``events``: the spool's file events (``watchfiles``: the OS's notifications, or polling when
  asked or when they are unavailable); a new or changed file is recorded ``unstable``.
* ``scans``: a full scan at start (what arrived while the daemon was down) and every
  ``rescan_seconds`` (events can be lost, network shares may send none).
* ``settle``: looks again at ``unstable`` files; a settled one goes to a header reader (a
  bounded stream); ``readers`` read headers in worker threads and record instances, or
  quarantine what is not DICOM or cannot be parsed. One reader when the spool is on a local
  disk, more on a network filesystem (``discover.default_readers``: parallel header reads on
  a local disk only hand the GIL round).
* ``status``: the status document, its file and the health endpoint's copy.
* ``dispatch`` (in the caller's task): sends complete studies, ``SENDS`` at once; on stop it
  takes no new study, lets sends under way finish within ``stop_grace`` and abandons the rest
  (they are ``sending`` in the queue and resume on the next start, looking first).

Memory does not grow with the backlog: files and studies live in the queue (SQLite); only the
study being sent is held, as header values, never file contents.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from watchfiles import Change, awatch

from xnatsync.dicom.discover import default_readers
from xnatsync.dicom.headers import NOT_DICOM, read_found
from xnatsync.dicom.instance import Found, Instance, Skipped
from xnatsync.dicom.studies import group
from xnatsync.errors import NotFoundError, ProjectNotFoundError, UsageError, XnatSyncError
from xnatsync.events import Fanout, Notice, Reporter
from xnatsync.journal import Journal
from xnatsync.lock import DestLock
from xnatsync.scheduler import Throttle
from xnatsync.watch import spool
from xnatsync.watch.health import Board, serve, write_status
from xnatsync.watch.link import Link, server_away
from xnatsync.watch.options import Reloadable, WatchOptions
from xnatsync.watch.queue import HISTORY, QUEUE, Queue, Seen
from xnatsync.watch.rules import Look, Snapshot, settled, verdict
from xnatsync.watch.sending import Recorded, Sending, after_upload
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

JOURNAL = "journal.db"
QUARANTINE = "quarantine"
LOOKS = 500  # unsettled files looked at per pass


class Control:
    """How the caller steers a running daemon: ``stop()`` (SIGTERM, SIGINT) and ``reload()``
    (SIGHUP). ``live`` is read afresh by every study."""

    def __init__(self, live: Reloadable) -> None:
        self.live = live
        self.stopping = anyio.Event()
        self.health: tuple[str, int] | None = None  # where the endpoint listens, once it does

    def stop(self) -> None:
        self.stopping.set()

    def reload(self, live: Reloadable) -> None:
        self.live = live


def check_places(options: WatchOptions, state: Path) -> None:
    """The spool is a folder; the state folder and a move target are not inside it."""
    if not options.spool.is_dir():
        raise UsageError(f"spool {options.spool} is not a folder (make it first)")
    root = options.spool.resolve()
    places = [("--state", state)]
    if options.live.after_upload.folder is not None:
        places.append(("--after-upload move:", Path(options.live.after_upload.folder)))
    for what, place in places:
        if place.resolve() == root or root in place.resolve().parents:
            raise UsageError(f"{what} {place} is inside the spool {options.spool}: put it apart")


async def watch(
    options: WatchOptions,
    state: Path,
    reporter: Reporter | None = None,
    *,
    control: Control | None = None,
    client: Callable[[], XnatClient] | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, int]:
    """Run the daemon until ``control.stop()``; return what it sent. Fatal errors raise."""
    reporter = reporter if reporter is not None else Fanout()
    control = control if control is not None else Control(options.live)
    check_places(options, state)

    def make(credentials: Credentials | None) -> XnatClient:
        if client is not None:
            return client()
        return XnatClient(options.url, credentials or options.credentials, limits=options.limits,
                          timeouts=options.timeouts, retry=options.retry,
                          ssl=options.ssl)  # fmt: skip

    link = Link(make, clock)
    with (
        DestLock(state),
        Queue.open(state / QUEUE) as queue,
        Journal.open(state / JOURNAL) as journal,
    ):
        queue.recover(clock())
        run_id = journal.start_run(f"watch {options.url} {options.project} {options.spool}")
        daemon = _Daemon(options, state, queue, journal, reporter, control, link, clock)
        status = "error"
        try:
            await daemon.run()
            status = "stopped"
        finally:
            await link.aclose()
            counts = daemon.counts()
            journal.finish_run(run_id, status, counts)
        return counts


class _Daemon:
    def __init__(
        self,
        options: WatchOptions,
        state: Path,
        queue: Queue,
        journal: Journal,
        reporter: Reporter,
        control: Control,
        link: Link,
        clock: Callable[[], float],
    ) -> None:
        self.options, self.state, self.queue, self.journal = options, state, queue, journal
        self.reporter, self.control, self.link, self.clock = reporter, control, link, clock
        self.board = Board()
        attempts = Recorded(reporter, retry=options.retry,
                            throttle=Throttle(options.limits.transfers))  # fmt: skip
        self.sending = Sending(options=options, queue=queue, journal=journal, link=link,
                               attempts=attempts, reporter=reporter,
                               live=lambda: control.live, clock=clock)  # fmt: skip
        self.quarantined = 0
        self._wake = anyio.Event()
        self._halt = False  # tells a scan in a worker thread to stop
        self._status_failed = False

    def counts(self) -> dict[str, int]:
        out = self.sending.outcome
        return {"studies_sent": out.studies, "instances_sent": out.sent,
                "studies_failed": out.failed, "quarantined": self.quarantined}  # fmt: skip

    async def run(self) -> None:
        await self._first_contact()
        await self._finish_after_upload()
        async with AsyncExitStack() as stack:
            if self.options.health is not None:
                where = await stack.enter_async_context(serve(self.board, *self.options.health))
                self.control.health = where
                self.reporter.emit(Notice(f"health on http://{where[0]}:{where[1]}/"))
            reads_in, reads_out = anyio.create_memory_object_stream[Seen](LOOKS)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._events)
                tasks.start_soon(self._scans)
                tasks.start_soon(self._settle, reads_in)
                readers = await anyio.to_thread.run_sync(default_readers, [self.options.spool])
                for _ in range(readers):
                    tasks.start_soon(self._read, reads_out.clone())
                reads_out.close()
                tasks.start_soon(self._status)
                await self._dispatch()
                self._halt = True
                tasks.cancel_scope.cancel()
            await self._write_status(stopped=True)

    # -- start ---------------------------------------------------------------------------------

    async def _first_contact(self) -> None:
        """Log in and check the project; a server away is no reason not to start."""
        project = self.options.project
        try:
            client = await self.link.client()
            await client.list_experiments(project)
        except NotFoundError as exc:
            raise ProjectNotFoundError(
                f"project {project}: not on {self.options.url}, or not visible to this user"
            ) from exc
        except XnatSyncError as exc:
            if not server_away(exc):
                raise
            self.link.down()
            self.reporter.emit(Notice(f"the server does not answer ({exc}); watching the spool "
                                      "and sending once it does"))  # fmt: skip
            return
        self.link.up()

    async def _finish_after_upload(self) -> None:
        """Files sent and checked before a stop whose after-upload action was not done."""
        paths = self.queue.files_in("sent", None)
        for start in range(0, len(paths), LOOKS):
            await after_upload(self.options.spool, self.control.live.after_upload, self.queue,
                               paths[start : start + LOOKS], self.clock,
                               self.reporter)  # fmt: skip

    # -- the spool -----------------------------------------------------------------------------

    async def _events(self) -> None:
        force = self.options.poll
        root = self.options.spool
        debounce = max(50, int(min(1.6, self.options.settle_seconds) * 1000))
        while not self.control.stopping.is_set():
            try:
                async for changes in awatch(
                    root, watch_filter=lambda _c, p: spool.wanted(root, Path(p)),
                    debounce=debounce, step=50, stop_event=self.control.stopping,
                    force_polling=force, poll_delay_ms=int(self.options.poll_seconds * 1000),
                    ignore_permission_denied=True,
                ):  # fmt: skip
                    await self._changed(changes)
                return
            except (OSError, RuntimeError) as exc:
                if force:
                    raise
                force = True
                every = self.options.poll_seconds
                self.reporter.emit(Notice(f"no file events from the OS for {root} ({exc}): "
                                          f"polling every {every} s"))  # fmt: skip

    async def _changed(self, changes: set[tuple[Change, str]]) -> None:
        gone = [Path(p) for change, p in changes if change == Change.deleted]
        paths = [Path(p) for change, p in changes if change != Change.deleted]
        for path in gone:
            self.queue.forget(path)

        def looks() -> list[spool.Look]:
            out = []
            for path in paths:
                seen = spool.look(path)
                if seen is not None:
                    out.append(seen)
                elif path.is_dir() and not path.is_symlink():  # moved in whole: no file events
                    for batch in spool.scan(path):
                        out.extend(batch)
            return out

        found = await anyio.to_thread.run_sync(looks)
        if found:
            self.queue.observe(found, self.clock())

    async def _scans(self) -> None:
        while True:
            seen = await anyio.to_thread.run_sync(self._scan_all)
            if seen:
                self.reporter.emit(Notice(f"spool scan: {seen} new or changed files"))
            self.queue.prune(self.clock() - HISTORY)
            with anyio.move_on_after(self.options.rescan_seconds):
                await self.control.stopping.wait()
            if self.control.stopping.is_set():
                return

    def _scan_all(self) -> int:
        """The whole spool, recorded batch by batch (blocking, in a worker thread)."""
        seen = 0
        for batch in spool.scan(self.options.spool):
            if self._halt:
                break
            seen += self.queue.observe(batch, self.clock())
        return seen

    async def _settle(self, reads: ObjectSendStream[Seen]) -> None:
        settle = self.options.settle_seconds
        async with reads:
            while True:
                now = self.clock()
                rows = self.queue.unsettled(now - settle, LOOKS)
                if rows:
                    looks = await anyio.to_thread.run_sync(_look_all, [r.path for r in rows])
                    await self._judge(rows, looks, reads)
                await anyio.sleep(min(1.0, settle / 2))

    async def _judge(
        self, rows: list[Seen], looks: list[spool.Look | None], reads: ObjectSendStream[Seen]
    ) -> None:
        now = self.clock()
        moving: list[spool.Look] = []
        ready: list[Seen] = []
        for row, seen in zip(rows, looks, strict=True):
            if seen is None:
                self.queue.forget(row.path)
                continue
            before = Look(row.size, row.mtime_ns, row.looked_at)
            if settled(before, Look(seen[1], seen[2], now), self.options.settle_seconds):
                ready.append(row)
            else:
                moving.append(seen)
        if moving:
            self.queue.relook(moving, now)
        if ready:
            self.queue.set_files([r.path for r in ready], "stable", now)
            for row in ready:
                await reads.send(row)

    async def _read(self, reads: ObjectReceiveStream[Seen]) -> None:
        async with reads:
            async for row in reads:
                found = await anyio.to_thread.run_sync(read_found, row.path)
                await self._record(row, found)

    async def _record(self, row: Seen, found: Found) -> None:
        now = self.clock()
        if isinstance(found, Instance):
            rejected = group([found]).rejected
            if not rejected:
                self.queue.record_instance(found, now)
                self._poke()
                return
            reason = rejected[0].reason
        elif isinstance(found, Skipped) and found.reason != NOT_DICOM:
            self.queue.set_files([row.path], "ignored", now, found.reason)
            return
        else:
            reason = found.reason
        if spool.look(row.path) is None:
            self.queue.forget(row.path)
            return
        await self._quarantine(row.path, reason)

    async def _quarantine(self, path: Path, reason: str) -> None:
        folder = self.state / QUARANTINE
        try:
            target = await anyio.to_thread.run_sync(
                spool.quarantine, self.options.spool, folder, path, reason
            )
        except OSError as exc:
            self.queue.set_files([path], "ignored", self.clock(),
                                 f"{reason}; could not be quarantined: {exc}")  # fmt: skip
            self.reporter.emit(Notice(f"{path}: {reason}; could not be quarantined: {exc}"))
            return
        self.queue.set_files([path], "quarantined", self.clock(), reason)
        if target is not None:
            self.quarantined += 1
            self.reporter.emit(Notice(f"quarantined {path} → {target}: {reason}"))

    # -- studies -------------------------------------------------------------------------------

    def _poke(self) -> None:
        self._wake.set()

    async def _dispatch(self) -> None:
        limit = self.options.limits.transfers
        in_flight: set[str] = set()
        async with anyio.create_task_group() as sends:

            async def send(uid: str) -> None:
                try:
                    await self.sending.send(uid)
                finally:
                    in_flight.discard(uid)
                    self._poke()

            while not self.control.stopping.is_set():
                free = limit - len(in_flight)
                quiet = self.control.live.quiet_seconds
                for uid in self.queue.ready(quiet, self.clock(), free) if free > 0 else []:
                    self.queue.begin(uid, self.clock())
                    in_flight.add(uid)
                    sends.start_soon(send, uid)
                tick = min(1.0, max(0.02, quiet / 5))
                with anyio.move_on_after(tick):
                    await self._either(self._wake, self.control.stopping)
                self._wake = anyio.Event()
            with anyio.move_on_after(self.options.stop_grace):
                while in_flight:
                    await self._wake.wait()
                    self._wake = anyio.Event()
            if in_flight:
                self.reporter.emit(Notice(f"stopping: {len(in_flight)} studies abandoned "
                                          "mid-send; they resume on the next start"))  # fmt: skip
            sends.cancel_scope.cancel()

    @staticmethod
    async def _either(first: anyio.Event, second: anyio.Event) -> None:
        async with anyio.create_task_group() as group_:

            async def wait(event: anyio.Event) -> None:
                await event.wait()
                group_.cancel_scope.cancel()

            group_.start_soon(wait, first)
            group_.start_soon(wait, second)

    # -- status --------------------------------------------------------------------------------

    async def _status(self) -> None:
        while True:
            await self._write_status()
            await anyio.sleep(self.options.status_seconds)

    async def _write_status(self, *, stopped: bool = False) -> None:
        now = self.clock()
        info = self.queue.summary()
        oldest = info["oldest_pending_since"]
        snapshot = Snapshot(now, oldest, self.link.unreachable_since)
        reason = (
            "stopped"
            if stopped
            else verdict(snapshot, self.options.max_backlog_age, self.options.max_unreachable)
        )
        document = info | {
            "at": now,
            "spool": str(self.options.spool),
            "project": self.options.project,
            "server": self.options.url,
            "backlog_age": 0.0 if oldest is None else round(now - oldest, 3),
            "reachable_since": self.link.reachable_since,
            "unreachable_since": self.link.unreachable_since,
            "healthy": reason is None,
            "reason": reason,
            "sent": self.counts(),
        }
        self.board.document = document
        with anyio.CancelScope(shield=stopped):
            try:
                await anyio.to_thread.run_sync(write_status, self.state, document)
            except OSError as exc:  # the endpoint still answers; the journal will fail loudly
                if not self._status_failed:
                    self.reporter.emit(Notice(f"cannot write {self.state}/status.json: {exc}"))
                self._status_failed = True
            else:
                self._status_failed = False


def _look_all(paths: list[Path]) -> list[spool.Look | None]:
    return [spool.look(path) for path in paths]
