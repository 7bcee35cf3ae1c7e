"""Send one complete study from the queue through the import engine, then decide its state.

The order, for one study:

1. Its instances come from the queue (never from a listing of the spool). Those not sent yet
   are looked at once more: a file gone since it was read is forgotten, a file changed since is
   seen again (the study waits for it to settle and be read); a copy of an instance already
   sent (same SOPInstanceUID) is ``ignored``.
2. Its labels: fixed the first time (``Queue.label``), from the templates in force then.
3. ``dicom.send.StudySender`` looks at the archive, sends only what is missing as one streamed
   DICOM-zip (appended to the same session: found by label or by StudyInstanceUID), checks
   the session (sizes, and the MD5s of what it sent) and journals the study ``done``. The
   project's sessions are listed afresh for each study, so a late series finds the session its
   first part made.
4. Checked: the files sent become ``sent``, the study ``done`` (or ``pending`` again if an
   instance arrived meanwhile), and only then the after-upload action applies to those files.
   Not checked: a server that did not answer, a 5xx, a reset or an incomplete archive puts
   the study back to ``pending`` with a capped backoff; any other error makes it ``failed``
   with the reason. Fatal errors (the journal or the disk, credentials refused) stop the
   daemon; the study is ``sending`` in the queue and is looked at again on restart.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio

from xnatsync.dicom.instance import Instance
from xnatsync.dicom.labels import LabelFailure, Labelled, assign
from xnatsync.dicom.send import StudySender, list_sessions
from xnatsync.dicom.studies import group
from xnatsync.errors import XnatSyncError
from xnatsync.events import Notice, Reporter
from xnatsync.journal import Journal
from xnatsync.scheduler import Attempts
from xnatsync.watch import spool
from xnatsync.watch.link import Link, server_away
from xnatsync.watch.options import Reloadable, WatchOptions
from xnatsync.watch.queue import Queue
from xnatsync.watch.rules import AfterUpload, next_try

T = TypeVar("T")


@dataclass
class Recorded(Attempts):
    """The engine's attempts loop, remembering the last error of each study it gave up on
    (``StudySender`` records a failure in the journal and returns; the daemon needs to know
    whether a later attempt may cure it)."""

    errors: dict[str, XnatSyncError] = field(default_factory=dict)

    async def run(
        self,
        key: str,
        label: str,
        size: int | None,
        call: Callable[[Callable[[int], None]], Awaitable[T]],
    ) -> T:
        self.errors.pop(key, None)
        try:
            return await super().run(key, label, size, call)
        except XnatSyncError as exc:
            self.errors[key] = exc
            raise


@dataclass
class Outcome:
    sent: int = 0  # instances in studies checked
    studies: int = 0  # studies checked
    failed: int = 0  # studies that failed for good


@dataclass(kw_only=True)
class Sending:
    """What every study's send shares."""

    options: WatchOptions
    queue: Queue
    journal: Journal
    link: Link
    attempts: Recorded
    reporter: Reporter
    live: Callable[[], Reloadable]
    clock: Callable[[], float]
    rand: Callable[[], float] = random.random
    outcome: Outcome = field(default_factory=Outcome)

    async def send(self, uid: str) -> None:
        """Send the study ``uid`` (``sending`` in the queue) and record what became of it."""
        item, fresh = await self._prepare(uid)
        if item is None:
            return
        try:
            client = await self.link.client()
            sender = StudySender(client=client, journal=self.journal,
                                 project=self.options.project, reporter=self.reporter,
                                 attempts=self.attempts, part_bytes=self.options.part_bytes,
                                 to_prearchive=self.options.to_prearchive)  # fmt: skip
            if not self.options.to_prearchive:  # afresh: a late series finds its session
                listed = await list_sessions(client, self.options.project)
                sender.sessions.update(listed.by_label)
                sender.by_uid.update(listed.by_uid)
            await sender.run(item)
        except XnatSyncError as exc:
            if not server_away(exc):
                raise
            await self._retry(uid, exc)
            return
        self.journal.flush()  # the study's journal row is written before the queue moves on
        error = self.attempts.errors.pop(uid, None)
        if error is not None:
            await self._retry(uid, error)
            return
        self.link.up()
        await self._checked(uid, item, fresh)

    async def _prepare(self, uid: str) -> tuple[Labelled | None, list[Path]]:
        """The study as it can be sent now, and the paths sent for the first time."""
        now = self.clock()
        rows = self.queue.instances_of(uid)
        earlier = [i for i, state in rows if state != "instance"]
        sent_uids = {i.sop_uid for i in earlier}
        new = [i for i, state in rows if state == "instance"]
        copies = [i for i in new if i.sop_uid in sent_uids]
        if copies:
            self.queue.set_files([i.path for i in copies], "ignored", now,
                                 "a copy of an instance already sent")  # fmt: skip
        new = [i for i in new if i.sop_uid not in sent_uids]
        looks = await anyio.to_thread.run_sync(lambda: [spool.look(i.path) for i in new])
        gone = [i for i, seen in zip(new, looks, strict=True) if seen is None]
        changed = [(i, s) for i, s in zip(new, looks, strict=True)
                   if s is not None and (s[1], s[2]) != (i.size, i.mtime_ns)]  # fmt: skip
        for instance in gone:
            self.queue.forget(instance.path)
        if changed:  # read again once settled; the study waits for them
            self.queue.observe([s for _, s in changed], now)
            self.queue.wait(uid, now)
            return None, []
        new = [i for i in new if i not in gone]
        if not new:
            if earlier:
                self.queue.finish(uid, [], now)
            else:
                self.queue.drop(uid)
            return None, []
        return self._labelled(uid, earlier + new), [i.path for i in new]

    def _labelled(self, uid: str, instances: list[Instance]) -> Labelled | None:
        grouping = group(instances)
        now = self.clock()
        for rejected in grouping.rejected:  # refused when read already; kept here for safety
            self.queue.set_files([rejected.path], "ignored", now, rejected.reason)
        for duplicate in grouping.duplicates:
            self.queue.set_files([duplicate.dropped], "ignored", now,
                                 f"a copy of {duplicate.kept}")  # fmt: skip
        if not grouping.studies:
            self.queue.drop(uid)
            return None
        study = grouping.studies[0]
        row = self.queue.study(uid)
        if row is not None and row.subject and row.session:
            return Labelled(study, row.subject, row.session)
        named = assign([study], self.live().naming)[0]
        if isinstance(named, LabelFailure):
            self.queue.fail(uid, named.reason, now)
            self.reporter.emit(Notice(f"study {uid}: not sent: {named.reason}"))
            self.outcome.failed += 1
            return None
        session = self.queue.label(uid, named.subject, named.session)
        return Labelled(study, named.subject, session)

    async def _retry(self, uid: str, error: XnatSyncError) -> None:
        now = self.clock()
        if server_away(error):
            self.link.down()
            if error.fatal:
                await self.link.reset()  # its session cannot be renewed: log in afresh
        else:
            self.link.up()
        if server_away(error) or error.retryable:
            failures = (self.queue.study(uid) or _NONE).attempts + 1
            when = next_try(self.options.requeue, failures, now, self.rand())
            self.queue.retry_later(uid, str(error), when, now)
            self.reporter.emit(Notice(
                f"study {uid}: not sent ({error}); try {failures + 1} in {when - now:.0f} s"
            ))  # fmt: skip
        else:
            self.queue.fail(uid, str(error), now)
            self.outcome.failed += 1
            self.reporter.emit(Notice(f"study {uid}: failed: {error}"))

    async def _checked(self, uid: str, item: Labelled, fresh: list[Path]) -> None:
        now = self.clock()
        state = self.queue.finish(uid, fresh, now)
        self.outcome.studies += 1
        self.outcome.sent += len(fresh)
        after = self.live().after_upload
        self.reporter.emit(Notice(
            f"study {uid} → {item.subject}/{item.session}: {len(fresh)} new instances "
            f"archived and checked ({item.study.count} in all); files: {after.text}"
            + ("; more arrived meanwhile" if state == "pending" else "")
        ))  # fmt: skip
        await after_upload(self.options.spool, after, self.queue, fresh, self.clock,
                           self.reporter)  # fmt: skip


async def after_upload(
    root: Path,
    after: AfterUpload,
    queue: Queue,
    paths: list[Path],
    clock: Callable[[], float],
    reporter: Reporter,
) -> None:
    """Apply ``after`` to sent files (``sent`` in the queue), then record it. A file that
    cannot be deleted or moved stays ``sent`` (tried again on the next start), said once."""
    if after.action == "keep":
        queue.set_files(paths, "kept", clock())
        return
    folder = Path(after.folder) if after.folder is not None else None

    def apply() -> tuple[list[Path], list[str]]:
        done, failed = [], []
        for path in paths:
            try:
                if folder is None:
                    spool.delete(path)
                else:
                    spool.move_out(root, folder, path)
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror or exc}")
            else:
                done.append(path)
        return done, failed

    done, failed = await anyio.to_thread.run_sync(apply)
    queue.set_files(done, "deleted" if folder is None else "moved", clock())
    if failed:
        reporter.emit(Notice(f"after-upload {after.text} failed for {len(failed)} sent files "
                             f"(first: {failed[0]}); tried again on the next start"))  # fmt: skip


@dataclass(frozen=True)
class _Row:
    attempts: int = 0


_NONE = _Row()
