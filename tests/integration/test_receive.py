"""``receive`` end to end: a pynetdicom SCU in the test sends to our C-STORE SCP on 127.0.0.1
(a free port), and we look at what landed in the spool and what the sender was told."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pydicom
import pytest
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    Verification,
)

from tests.unit.dicom.dicomfiles import spec, write_instance
from xnatsync.cli.main import build_parser, main
from xnatsync.cli.receive import DEFAULTS as RECEIVE_DEFAULTS
from xnatsync.cli.receive import RECEIVE_EXAMPLE, parse_listen
from xnatsync.cli.receive import options_from as receive_options_from
from xnatsync.cli.settings import merged
from xnatsync.receive.naming import spool_name
from xnatsync.receive.options import DicomTimeouts, ReceiveOptions
from xnatsync.receive.run import receiving
from xnatsync.receive.scp import Receiver
from xnatsync.receive.spool import TMP_DIR, Spool

REPO = Path(__file__).parents[2]
MR = (MRImageStorage, [ExplicitVRLittleEndian])
Contexts = Sequence[tuple[str, Sequence[str]]]


def options(spool: Path, **changes: Any) -> ReceiveOptions:
    fast = DicomTimeouts(acse=5, dimse=5, network=5)
    return replace(ReceiveOptions(spool=spool, port=0, timeouts=fast, stop_grace=5), **changes)


@contextmanager
def association(
    address: tuple[str, int], calling: str = "SCANNER1", contexts: Contexts = (MR,)
) -> Iterator[Association]:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate(*address, ae_title="XNATSYNC")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def store(assoc: Association, path: Path) -> int:
    status = assoc.send_c_store(path)
    return int(status.Status)


def data_set(part10: bytes) -> bytes:
    """What follows the file meta group of a Part-10 file."""
    assert part10[128:132] == b"DICM"
    (group_length,) = struct.unpack("<I", part10[140:144])
    return part10[144 + group_length :]


def spooled(spool: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in spool.iterdir() if p.is_file()}


def until(condition: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "event", None) == name
    ]


def test_a_study_arrives_whole_named_by_uid_with_the_data_set_as_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "xnatsync.receive")
    sent = [
        write_instance(tmp_path / "out" / f"{s}-{n}.dcm", spec("s1", series=s, number=n))
        for s in (1, 2)
        for n in (1, 2)
    ]
    (spool := tmp_path / "spool").mkdir()
    with Receiver(options(spool)) as receiver, association(receiver.address) as assoc:
        assert [store(assoc, path) for path in sent] == [0, 0, 0, 0]
    files = spooled(spool)
    assert len(files) == 4
    for path in sent:
        original = pydicom.dcmread(path)
        name = f"{original.SOPInstanceUID}.dcm"
        assert data_set(files[name]) == data_set(path.read_bytes())  # byte for byte
        meta = pydicom.dcmread(spool / name).file_meta
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
        assert meta.MediaStorageSOPClassUID == original.SOPClassUID
        assert meta.SourceApplicationEntityTitle == "SCANNER1"
    assert os.listdir(spool / TMP_DIR) == []
    assert len(events(caplog, "InstanceStored")) == 4
    until(lambda: bool(events(caplog, "AssociationEnded")), what="the association's end")
    (ended,) = events(caplog, "AssociationEnded")
    assert ended | {"address": ""} == {
        "calling_ae": "SCANNER1", "address": "", "ended": "released", "stored": 4, "refused": 0,
    }  # fmt: skip


def test_a_data_set_keeps_the_syntax_it_was_sent_in(tmp_path: Path) -> None:
    source = write_instance(tmp_path / "explicit.dcm", spec("s2"))
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = tmp_path / "implicit.dcm"
    ds.save_as(implicit, enforce_file_format=True)
    (spool := tmp_path / "spool").mkdir()
    contexts = [(MRImageStorage, [ImplicitVRLittleEndian])]
    with Receiver(options(spool)) as receiver, association(receiver.address, "CT2", contexts) as a:
        assert store(a, implicit) == 0
    stored = (spool / f"{ds.SOPInstanceUID}.dcm").read_bytes()
    assert data_set(stored) == data_set(implicit.read_bytes())
    back = pydicom.dcmread(spool / f"{ds.SOPInstanceUID}.dcm")
    assert back.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert back.PatientName == ds.PatientName
    assert back.PixelData == ds.PixelData


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # on both sides
def test_a_non_conformant_uid_gets_a_safe_name_of_its_own(tmp_path: Path) -> None:
    """Some senders put letters or worse in UIDs: stored, under a name that cannot escape."""
    uid = "1.2.x/../4"
    ds = pydicom.dcmread(write_instance(tmp_path / "a.dcm", spec("s9")))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    (spool := tmp_path / "spool").mkdir()
    with Receiver(options(spool)) as receiver, association(receiver.address) as assoc:
        assert assoc.send_c_store(ds).Status == 0
    (name,) = spooled(spool)
    assert name == spool_name(uid)
    assert name.startswith("1.2.x_.._4-")
    back = pydicom.dcmread(spool / name)
    assert back.file_meta.MediaStorageSOPInstanceUID == uid
    assert back.SOPInstanceUID == uid
    assert back.PixelData == ds.PixelData


def test_c_echo_is_answered(tmp_path: Path) -> None:
    with (
        Receiver(options(tmp_path)) as receiver,
        association(receiver.address, contexts=[(Verification, [ImplicitVRLittleEndian])]) as a,
    ):
        assert a.send_c_echo().Status == 0


def test_a_repeated_instance_replaces_the_file(tmp_path: Path) -> None:
    first = write_instance(tmp_path / "a.dcm", spec("s3", series_description="first"))
    again = write_instance(tmp_path / "b.dcm", spec("s3", series_description="again"))
    (spool := tmp_path / "spool").mkdir()
    with Receiver(options(spool)) as receiver:
        with association(receiver.address) as assoc:
            assert store(assoc, first) == 0
        with association(receiver.address) as assoc:
            assert store(assoc, again) == 0
    (name,) = spooled(spool)
    assert pydicom.dcmread(spool / name).SeriesDescription == "again"


def test_a_calling_ae_title_not_allowed_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "xnatsync.receive")
    (spool := tmp_path / "spool").mkdir()
    with Receiver(options(spool, allowed_aes=("SCANNER1",))) as receiver:
        with association(receiver.address, calling="INTRUDER") as refused:
            assert refused.is_rejected
            assert not refused.is_established
        with association(receiver.address, calling="SCANNER1") as allowed:
            assert allowed.is_established
    (record,) = events(caplog, "AssociationRefused")
    assert record["calling_ae"] == "INTRUDER"
    assert "not allowed" in record["reason"]
    assert not events(caplog, "AnyCallingAE")  # the loud warning is for an open receiver only


def test_without_allow_ae_any_caller_is_accepted_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver(options(tmp_path)) as receiver, association(receiver.address, "ANYONE") as a:
        assert a.is_established
    (warning,) = [r for r in caplog.records if getattr(r, "event", None) == "AnyCallingAE"]
    assert warning.levelno == logging.WARNING
    assert "ANY calling AE" in warning.getMessage()


def test_a_full_disk_answers_out_of_resources_and_keeps_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    instance = write_instance(tmp_path / "a.dcm", spec("s4"))
    (spool_dir := tmp_path / "spool").mkdir()
    full = threading.Event()
    full.set()

    def write(fd: int, data: memoryview) -> int:
        if full.is_set():
            os.write(fd, data[:100])  # part of it went to disk before the disk filled
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    spool = Spool(spool_dir, write=write)
    with (
        Receiver(options(spool_dir), spool=spool) as receiver,
        association(receiver.address) as assoc,
    ):
        assert store(assoc, instance) == 0xA700
        assert spooled(spool_dir) == {}
        assert os.listdir(spool_dir / TMP_DIR) == []
        full.clear()  # space freed: the sender's retry is stored
        assert store(assoc, instance) == 0
    assert len(spooled(spool_dir)) == 1
    (refused,) = events(caplog, "InstanceRefused")
    assert refused["status"] == "0xA700"
    assert "No space left" in refused["reason"]


def test_an_unwritable_spool_answers_out_of_resources(tmp_path: Path) -> None:
    instance = write_instance(tmp_path / "a.dcm", spec("s5"))
    (spool_dir := tmp_path / "spool").mkdir()
    locked = threading.Event()

    def opener(path: Path, flags: int, mode: int) -> int:
        if locked.is_set():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return os.open(path, flags, mode)

    spool = Spool(spool_dir, opener=opener)
    with Receiver(options(spool_dir), spool=spool) as receiver:
        locked.set()
        with association(receiver.address) as assoc:
            assert store(assoc, instance) == 0xA700
        locked.clear()
        os.rmdir(spool_dir / TMP_DIR)
        os.rmdir(spool_dir)  # the share was unmounted under us: refused, and not made again
        with association(receiver.address) as assoc:
            assert store(assoc, instance) == 0xA700
    assert not spool_dir.exists()


def test_a_sop_class_we_do_not_accept_cannot_be_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = "1.2.826.0.1.3680043.9.9999.1"  # not a storage SOP class pynetdicom knows
    contexts = [(private, [ExplicitVRLittleEndian]), (CTImageStorage, [ExplicitVRLittleEndian])]
    with Receiver(options(tmp_path)) as receiver, association(receiver.address, "X", contexts) as a:
        accepted = {str(cx.abstract_syntax) for cx in a.accepted_contexts}
        assert accepted == {CTImageStorage}
    (record,) = events(caplog, "ContextsRejected")
    assert record["rejected_sop_classes"] == [private]


def test_more_associations_than_allowed_are_refused(tmp_path: Path) -> None:
    with (
        Receiver(options(tmp_path, max_associations=1)) as receiver,
        association(receiver.address) as first,
        association(receiver.address) as second,
    ):
        assert first.is_established
        assert second.is_rejected


def test_an_idle_association_is_aborted(tmp_path: Path) -> None:
    quick = DicomTimeouts(acse=5, dimse=5, network=0.3)
    with (
        Receiver(options(tmp_path, timeouts=quick)) as receiver,
        association(receiver.address) as assoc,
    ):
        assert assoc.is_established
        until(lambda: assoc.is_aborted, what="the idle association's abort")


def test_a_silent_connection_is_closed(tmp_path: Path) -> None:
    quick = DicomTimeouts(acse=0.3, dimse=5, network=5)
    with (
        Receiver(options(tmp_path, timeouts=quick)) as receiver,
        socket.create_connection(receiver.address, timeout=10) as sock,
    ):
        assert sock.recv(1) == b""  # closed by us, long before the socket's own timeout


def test_stop_lets_a_store_being_written_finish_refuses_later_ones_then_aborts(
    tmp_path: Path,
) -> None:
    first = write_instance(tmp_path / "a.dcm", spec("s6", number=1))
    late = write_instance(tmp_path / "b.dcm", spec("s6", number=2))
    (spool_dir := tmp_path / "spool").mkdir()
    writing, go_on = threading.Event(), threading.Event()

    def write(fd: int, data: memoryview) -> int:
        writing.set()
        assert go_on.wait(10)
        return os.write(fd, data)

    receiver = Receiver(options(spool_dir), spool=Spool(spool_dir, write=write))
    _, port = receiver.start()
    statuses: list[int] = []
    with association(receiver.address) as busy, association(receiver.address) as other:
        sender = threading.Thread(target=lambda: statuses.append(store(busy, first)))
        sender.start()
        assert writing.wait(10)
        stopper = threading.Thread(target=receiver.stop)
        stopper.start()
        until(lambda: _refuses_connections(port), what="the listener closed")
        assert store(other, late) == 0xA700  # stopping: the sender keeps it for later
        go_on.set()
        sender.join(10)
        stopper.join(10)
        assert not stopper.is_alive()
        assert statuses == [0]  # the store in flight finished and was acknowledged
        until(lambda: busy.is_aborted and other.is_aborted, what="the associations' abort")
    assert list(spooled(spool_dir)) == [f"{pydicom.dcmread(first).SOPInstanceUID}.dcm"]


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):  # reset: caught in the closing
        return True
    return False


async def test_receiving_on_an_event_loop(tmp_path: Path) -> None:
    instance = write_instance(tmp_path / "a.dcm", spec("s7"))
    (spool := tmp_path / "spool").mkdir()

    def send(address: tuple[str, int]) -> int:
        with association(address) as assoc:
            return store(assoc, instance)

    with anyio.CancelScope() as scope:
        async with receiving(options(spool)) as receiver:
            address = receiver.address
            assert await anyio.to_thread.run_sync(send, address) == 0
            scope.cancel()  # a daemon cancelled: the receiver stops all the same
            await anyio.sleep_forever()
    assert _refuses_connections(address[1])
    assert len(spooled(spool)) == 1


# -- the command line ----------------------------------------------------------------------


def example_command(source: str) -> str:
    """The command of configs/xnatsync-receive.service, or of ``receive --help``'s example."""
    if source == "unit":
        text = (REPO / "configs" / "xnatsync-receive.service").read_text("utf-8")
        prefix = "ExecStart="
    else:
        text, prefix = RECEIVE_EXAMPLE, "  xnatsync "
    joined = re.sub(r"\\\n\s*", " ", text)  # continuation lines
    lines = [line for line in joined.splitlines() if line.startswith(prefix)]
    (line,) = [line for line in lines if "--listen" in line]  # the other: --config
    return line.removeprefix("ExecStart=").strip()


def test_the_readme_shows_the_help_example() -> None:
    readme = re.sub(r"\\\n\s*", " ", (REPO / "README.md").read_text("utf-8"))
    assert example_command("help") in readme


@pytest.mark.parametrize("source", ["unit", "help"])
def test_the_examples_receive_and_stop_with_0(tmp_path: Path, source: str) -> None:
    """As written, with only the port and the spool swapped for the test's."""
    instance = write_instance(tmp_path / "a.dcm", spec("s8"))
    (spool := tmp_path / "spool").mkdir()
    words = shlex.split(example_command(source))
    assert Path(words[0]).name == "xnatsync"
    words = words[1:]
    words[words.index("--listen") + 1] = "127.0.0.1:0"
    words[words.index("--spool") + 1] = str(spool)
    with _start(words) as proc:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)", first)
        assert port, first
        address = ("127.0.0.1", int(port[1]))
        with association(address, "SCANNER1") as assoc:
            assert store(assoc, instance) == 0
        with association(address, "STRANGER") as refused:
            assert refused.is_rejected
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        rest = proc.stderr.read()
    assert "STRANGER" in rest
    assert "stopped" in rest.lower()
    assert len(spooled(spool)) == 1
    if "--log-json" in words:  # every line a JSON record, for a log collector
        records = [json.loads(line) for line in [first, *rest.splitlines()]]
        seen = [r["event"] for r in records]
        assert seen[0] == "Listening"
        assert {"AssociationEnded", "AssociationRefused", "Stopped"} <= set(seen)


def test_text_logs_warn_loudly_and_sigint_stops_with_0(tmp_path: Path) -> None:
    with _start(["receive", "--listen", "127.0.0.1:0", "--spool", str(tmp_path)]) as proc:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
        assert first.startswith("xnatsync: receiving DICOM on 127.0.0.1:"), first
        assert second.startswith("xnatsync: warning: no --allow-ae given"), second
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "stopped" in proc.stderr.read()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "11112"], "expected HOST:PORT"),
        (["--listen", "127.0.0.1:70000"], "expected HOST:PORT"),
        (["--ae-title", "MUCH_TOO_LONG_AE_TITLE"], "1 to 16 printable"),
        (["--allow-ae", "BAD\\AE"], "no backslash"),
        (["--network-timeout", "0"], "--network-timeout must be positive"),
        (["--spool", "/nonexistent/spool"], "spool /nonexistent/spool does not exist"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = {"--listen": "127.0.0.1:0", "--spool": str(tmp_path)}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    argv = ["receive", *[w for pair in base.items() for w in pair]]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_listen_addresses() -> None:
    assert parse_listen("0.0.0.0:11112") == ("0.0.0.0", 11112)
    assert parse_listen("[::1]:104") == ("::1", 104)
    assert parse_listen("scanner-gw.local:0") == ("scanner-gw.local", 0)


def test_a_port_in_use_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["receive", "--listen", f"127.0.0.1:{port}", "--spool", str(tmp_path)]
        assert main(argv) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@contextmanager
def _start(args: list[str], cwd: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """The command in a child process; killed if the test left it running."""
    with subprocess.Popen(
        [sys.executable, "-m", "xnatsync", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc
        finally:
            proc.kill()


def test_the_config_file_runs_as_written(tmp_path: Path) -> None:
    """configs/receive.toml in a folder holding ./spool, only the port swapped for a free one:
    its AE titles, spool and JSON logs are the ones in force."""
    instance = write_instance(tmp_path / "a.dcm", spec("s9"))
    (tmp_path / "spool").mkdir()
    config = str(REPO / "configs" / "receive.toml")
    args = ["receive", "--config", config, "--listen", "127.0.0.1:0"]
    with _start(args, cwd=tmp_path) as proc:
        assert proc.stderr is not None
        first = json.loads(proc.stderr.readline())
        assert first["event"] == "Listening"
        assert (first["ae_title"], first["allowed_aes"]) == ("XNATSYNC", ["SCANNER1"])
        assert first["spool"] == str(tmp_path / "spool")
        address = ("127.0.0.1", int(first["port"]))
        with association(address, "SCANNER1") as assoc:
            assert store(assoc, instance) == 0
        with association(address, "STRANGER") as refused:
            assert refused.is_rejected
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    uid = pydicom.dcmread(instance).SOPInstanceUID
    assert list(spooled(tmp_path / "spool")) == [f"{uid}.dcm"]


def test_the_command_line_overrides_the_config_and_bad_keys_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "receive.toml"
    config.write_text(f'[receive]\nlisten = "127.0.0.1:0"\nallow_ae = ["SCANNER1"]\n'
                      f'spool = "{tmp_path}"\nmax_associations = 3\n'
                      "network_timeout = 7\n")  # fmt: skip
    args = build_parser().parse_args(["receive", "--config", str(config), "--allow-ae", "PACS"])
    options = receive_options_from(merged(args, "receive", RECEIVE_DEFAULTS))
    assert options.allowed_aes == ("PACS",)  # the command line's list replaces the file's
    assert (options.max_associations, options.timeouts.network) == (3, 7)
    assert (options.ae_title, options.timeouts.acse, options.stop_grace) == ("XNATSYNC", 30, 10)
    config.write_text('[receive]\nlisten = "127.0.0.1:0"\nallow-aes = ["SCANNER1"]\n')
    assert main(["receive", "--config", str(config), "--spool", str(tmp_path)]) == 2
    assert "unknown setting 'allow-aes'" in capsys.readouterr().err
    config.write_text(f'[receive]\nspool = "{tmp_path}"\n')
    assert main(["receive", "--config", str(config)]) == 2
    assert "receive needs --listen" in capsys.readouterr().err
