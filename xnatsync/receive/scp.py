"""The C-STORE SCP: pynetdicom's server, its handlers, and what each sender is answered.

``Receiver(options).start()`` binds and serves in pynetdicom's own threads (one per
association); ``stop()`` ends it. Nothing here touches an event loop: handlers run in the
association threads and write the spool with plain blocking I/O (``spool.Spool``).

What a sender is told (the README repeats this table):

=================================  =====================================================
the instance is in the spool        0x0000 Success (only after write, fsync and rename)
the spool's disk is full, the       0xA700 Refused: Out of Resources (the sender keeps the
spool unwritable or gone, any       instance and sends it again later); logged with
other failure on our side           the reason
we are stopping                     0xA700 as above; associations still open after the
                                    stores being written finish are aborted
no SOP Instance UID, or an empty    0xC000 Error: Cannot Understand / 0xA900 Data Set Does
data set                            Not Match SOP Class (a resend would not help)
a calling AE title not in           association rejected (permanent, calling AE title not
``allowed_aes``                     recognised)
more than ``max_associations``      association rejected (transient, local limit exceeded)
a SOP class or transfer syntax we   that presentation context rejected (abstract syntax /
do not accept                       transfer syntaxes not supported): the sender cannot
                                    send it on this association
C-ECHO                              0x0000 Success
=================================  =====================================================

Accepted: every storage SOP class pynetdicom knows (``AllStoragePresentationContexts``), each
in every transfer syntax it knows (``ALL_TRANSFER_SYNTAXES``: implicit and explicit VR little
endian, explicit big endian, deflated, the JPEG, JPEG-LS, JPEG 2000, JPEG XL, HTJ2K, RLE, MPEG
and HEVC families); Verification (C-ECHO). The data set is never decoded, so a compressed one
is stored exactly as it came.

Logs go to the ``xnatsync.receive`` logger; each record carries ``event`` (a name such as
``InstanceStored``) and ``fields`` (UIDs, AE titles, peer address, path, status) for JSON
lines. No patient data is logged: the data set is never read.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from xnatsync.errors import LocalDiskError, LocalFileError, UsageError
from xnatsync.receive.naming import file_header, spool_name
from xnatsync.receive.options import ReceiveOptions
from xnatsync.receive.spool import Spool

if TYPE_CHECKING:
    from pynetdicom.events import EventHandlerType

LOG = logging.getLogger("xnatsync.receive")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
_LISTED_CONTEXTS = 5  # rejected presentation contexts named in a log line


@dataclass(slots=True)
class _Tally:
    """One association's counts, for the line logged when it ends."""

    stored: int = 0
    refused: int = 0
    ended: str = "closed"


class Receiver:
    """A DICOM C-STORE SCP writing into a spool; ``start`` once, then ``stop`` (or ``with``)."""

    def __init__(
        self, options: ReceiveOptions, *, spool: Spool | None = None, log: logging.Logger = LOG
    ) -> None:
        self.options = options
        self.spool = spool if spool is not None else Spool(options.spool)
        self._log = log
        self._server: ThreadedAssociationServer | None = None
        self._stopping = threading.Event()
        self._busy = threading.Condition()
        self._writing = 0
        self._tallies: dict[int, _Tally] = {}

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when ``options.port`` was 0)."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        """Check the spool, bind, serve in pynetdicom's threads; return the address."""
        swept = self.spool.prepare()
        ae = self._application_entity()
        try:
            self._server = ae.start_server(
                (self.options.host, self.options.port), block=False, evt_handlers=self._handlers()
            )
        except OSError as exc:
            where = f"{self.options.host}:{self.options.port}"
            raise UsageError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        host, port = self.address
        allowed = list(self.options.allowed_aes)
        self._note(
            logging.INFO,
            "Listening",
            f"receiving DICOM on {host}:{port} as AE "
            f"{self.options.ae_title!r} into {self.options.spool}",
            host=host,
            port=port,
            ae_title=self.options.ae_title,
            spool=str(self.options.spool),
            allowed_aes=allowed,
            temps_removed=swept,
        )
        if not allowed:
            self._note(
                logging.WARNING,
                "AnyCallingAE",
                "no --allow-ae given: accepting "
                "associations from ANY calling AE title that can reach this port",
            )
        return host, port

    def stop(self) -> None:
        """Stop listening; stores being written finish (up to ``options.stop_grace`` seconds),
        later ones are refused (0xA700); then the associations still open are aborted."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        self._note(logging.INFO, "Stopping", "stopping: no new associations")
        server.shutdown()
        with self._busy:
            finished = self._busy.wait_for(lambda: self._writing == 0, self.options.stop_grace)
            unfinished = self._writing
        open_now = server.active_associations
        for assoc in open_now:
            assoc.abort()
        deadline = time.monotonic() + self.options.stop_grace
        for assoc in open_now:
            assoc.join(timeout=max(0.0, deadline - time.monotonic()))
        message = f"stopped ({len(open_now)} association(s) aborted)"
        if not finished:  # their senders got no answer: they resend, and the file is replaced
            message += f"; {unfinished} store(s) still being written after the grace period"
        self._note(
            logging.INFO if finished else logging.WARNING,
            "Stopped",
            message,
            aborted=len(open_now),
            unfinished_writes=unfinished,
        )

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _application_entity(self) -> AE:
        opts = self.options
        ae = AE(ae_title=opts.ae_title)
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.acse_timeout = opts.timeouts.acse
        ae.dimse_timeout = opts.timeouts.dimse
        ae.network_timeout = opts.timeouts.network
        ae.maximum_associations = opts.max_associations
        ae.require_calling_aet = list(opts.allowed_aes)
        return ae

    def _handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, self._on_ended),
            (evt.EVT_ABORTED, self._on_ended),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]

    # -- C-STORE ---------------------------------------------------------------------------

    def _on_store(self, event: evt.Event) -> int:
        with self._busy:
            self._writing += 1
        try:
            status = self._store(event)
        finally:
            with self._busy:
                self._writing -= 1
                self._busy.notify_all()
        tally = self._tallies.get(id(event.assoc))
        if tally is not None:
            if status == SUCCESS:
                tally.stored += 1
            else:
                tally.refused += 1
        return status

    def _store(self, event: evt.Event) -> int:
        request = event.request
        uid = str(getattr(request, "AffectedSOPInstanceUID", None) or "")
        peer = _peer(event.assoc)
        if self._stopping.is_set():
            return self._refuse(OUT_OF_RESOURCES, "stopping", uid, peer)
        name = spool_name(uid)
        if name is None:
            return self._refuse(CANNOT_UNDERSTAND, "no SOP Instance UID", uid, peer)
        data = event.encoded_dataset(include_meta=False)
        if not data:
            return self._refuse(DOES_NOT_MATCH, "empty data set", uid, peer)
        header = file_header(
            sop_class=str(getattr(request, "AffectedSOPClassUID", None) or ""),
            sop_instance=uid,
            transfer_syntax=str(event.context.transfer_syntax),
            source_ae=event.assoc.requestor.ae_title,
        )
        started = time.monotonic()
        try:
            path = self.spool.store(name, (header, data))
        except (LocalDiskError, LocalFileError) as exc:
            return self._refuse(OUT_OF_RESOURCES, str(exc), uid, peer)
        except Exception as exc:  # our bug: never acknowledge an instance not on disk
            self._log.exception("storing %s failed", uid)
            return self._refuse(OUT_OF_RESOURCES, f"{type(exc).__name__}: {exc}", uid, peer)
        self._note(
            logging.DEBUG,
            "InstanceStored",
            f"stored {uid} from {peer['calling_ae']!r}",
            sop_instance_uid=uid,
            path=str(path),
            bytes=len(header) + len(data),
            seconds=round(time.monotonic() - started, 4),
            **peer,
        )
        return SUCCESS

    def _refuse(self, status: int, reason: str, uid: str, peer: dict[str, Any]) -> int:
        self._note(
            logging.ERROR,
            "InstanceRefused",
            f"refused {uid or '(no UID)'} from {peer['calling_ae']!r} with 0x{status:04X}: "
            f"{reason}",
            sop_instance_uid=uid,
            status=f"0x{status:04X}",
            reason=reason,
            **peer,
        )
        return status

    # -- associations and C-ECHO -----------------------------------------------------------

    def _on_echo(self, event: evt.Event) -> int:
        peer = _peer(event.assoc)
        self._note(logging.DEBUG, "EchoAnswered", f"C-ECHO from {peer['calling_ae']!r}", **peer)
        return SUCCESS

    def _on_accepted(self, event: evt.Event) -> None:
        self._tallies[id(event.assoc)] = _Tally()
        peer = _peer(event.assoc)
        self._note(
            logging.INFO,
            "AssociationAccepted",
            f"association from {peer['calling_ae']!r} ({peer['address']}) accepted",
            **peer,
        )
        rejected = sorted({str(cx.abstract_syntax) for cx in event.assoc.rejected_contexts})
        if rejected:
            names = ", ".join(_sop_name(uid) for uid in rejected[:_LISTED_CONTEXTS])
            more = len(rejected) - _LISTED_CONTEXTS
            self._note(
                logging.WARNING,
                "ContextsRejected",
                f"{peer['calling_ae']!r} proposed what we do not accept: {names}"
                + (f" and {more} more" if more > 0 else ""),
                rejected_sop_classes=rejected,
                **peer,
            )

    def _on_rejected(self, event: evt.Event) -> None:
        peer = _peer(event.assoc)
        allowed = self.options.allowed_aes
        reason = (
            "calling AE title not allowed (--allow-ae)"
            if allowed and peer["calling_ae"] not in allowed
            else f"more than {self.options.max_associations} associations at once"
        )
        self._note(
            logging.WARNING,
            "AssociationRefused",
            f"refused association from {peer['calling_ae']!r} ({peer['address']}): {reason}",
            reason=reason,
            **peer,
        )

    def _on_ended(self, event: evt.Event) -> None:
        tally = self._tallies.get(id(event.assoc))
        if tally is not None:
            tally.ended = "released" if event.event is evt.EVT_RELEASED else "aborted"

    def _on_closed(self, event: evt.Event) -> None:
        tally = self._tallies.pop(id(event.assoc), None)
        if tally is None:  # a connection refused before it was an association
            return
        peer = _peer(event.assoc)
        self._note(
            logging.INFO,
            "AssociationEnded",
            f"association from {peer['calling_ae']!r} ({peer['address']}) {tally.ended}: "
            f"{tally.stored} stored, {tally.refused} refused",
            ended=tally.ended,
            stored=tally.stored,
            refused=tally.refused,
            **peer,
        )

    def _note(self, level: int, event: str, message: str, **fields: Any) -> None:
        self._log.log(level, message, extra={"event": event, "fields": fields})


def _peer(assoc: Association) -> dict[str, Any]:
    requestor = assoc.requestor
    return {
        "calling_ae": str(requestor.ae_title or "").strip(),
        "address": f"{requestor.address}:{requestor.port}",
    }


def _sop_name(uid: str) -> str:
    name = UID(uid).name
    return uid if name == uid else f"{name} ({uid})"
