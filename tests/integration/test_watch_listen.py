"""``xnatsync watch --listen``: a pynetdicom SCU in the test sends a study by C-STORE to the
daemon's own receiver, and the study ends up archived once; SIGTERM stops the receiver before
the daemon."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]

from tests.integration.conftest import run_cli, start_cli, wait_for
from tests.integration.test_watch_cli import args, done_studies
from tests.integration.watchhelp import archived, sends_by_session
from tests.unit.dicom.dicomfiles import spec, write_instance
from xnatsync.cli.main import build_parser, main
from xnatsync.cli.settings import merged
from xnatsync.cli.watch import DEFAULTS, listen_from
from xnatsync.emulator.server import Emulator

SESSION = "PL_20240102"


def send_study(port: int, paths: list[Path], calling: str = "SCANNER1") -> list[int] | None:
    """C-STORE each file on one association; the statuses, or None when it was rejected."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(MRImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="XNATSYNC")
    if not assoc.is_established:
        return None
    try:
        return [int(assoc.send_c_store(path).Status) for path in paths]
    finally:
        assoc.release()


class Log:
    """The daemon's stderr, read as JSON lines while it runs (so the pipe never fills)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.records: list[dict[str, Any]] = []
        self._proc = proc

    async def read(self) -> None:
        assert self._proc.stderr is not None
        async for line in self._proc.stderr:
            self.records.append(json.loads(line))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["event"] == name]


async def test_a_study_sent_by_c_store_is_archived_once(emu: Emulator, tmp_path: Path) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    spool.mkdir()
    study = [
        write_instance(tmp_path / "scanner" / f"{s}-{n}.dcm", spec("L", s, n, patient_id="PL"))
        for s in (1, 2)
        for n in (1, 2, 3)
    ]
    proc = await start_cli(*args(emu, spool, state, "--quiet-seconds", "0.3", "--log-json",
                                 "--listen", "127.0.0.1:0", "--allow-ae", "SCANNER1",
                                 "--network-timeout", "20"))  # fmt: skip
    log = Log(proc)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(log.read)
        await wait_for(lambda: bool(log.events("Listening")), what="the receiver listening")
        (listening,) = log.events("Listening")
        assert listening["allowed_aes"] == ["SCANNER1"]
        assert listening["spool"] == str(spool)
        port = int(listening["port"])
        assert await anyio.to_thread.run_sync(send_study, port, study) == [0] * 6
        assert await anyio.to_thread.run_sync(send_study, port, study[:1], "STRANGER") is None
        await wait_for(lambda: done_studies(state) == {SESSION}, within=30, what="study done")
        code, out, _ = await run_cli("status", "--journal", str(state / "journal.db"))
        assert code == 0
        assert "0 pending, 0 sending, 1 done, 0 failed" in out
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert sends_by_session(emu) == {SESSION: 1}
    named = {(str(s), f"{spec('L', s, n).sop_uid}.dcm") for s in (1, 2) for n in (1, 2, 3)}
    assert await archived(emu, "PL") == {SESSION: named}  # the spool's names: SOP Instance UIDs
    order = [r["event"] if r["event"] != "Notice" else r["message"][:9] for r in log.records]
    assert order.index("Stopped") < order.index("stopping:")  # the receiver first
    refused = log.events("AssociationRefused")
    assert [r["calling_ae"] for r in refused] == ["STRANGER"]


def test_receiver_settings_need_listen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["watch", "http://127.0.0.1:9", "--project", "DEMO", "--spool", str(tmp_path)]
    assert main([*base, "--allow-ae", "SCANNER1", "--max-associations", "3"]) == 2
    assert "--allow-ae, --max-associations: only with --listen" in capsys.readouterr().err
    config = tmp_path / "scanner.toml"
    config.write_text('[watch]\nlisten = "127.0.0.1:0"\nae_title = "GATEWAY"\n'
                      'allow_ae = ["CT1", "MR1"]\ndimse_timeout = 5\n')  # fmt: skip
    parsed = build_parser().parse_args([*base, "--config", str(config), "--acse-timeout", "4"])
    listen = listen_from(merged(parsed, "watch", DEFAULTS), tmp_path)
    assert listen is not None
    assert (listen.host, listen.port, listen.ae_title) == ("127.0.0.1", 0, "GATEWAY")
    assert listen.allowed_aes == ("CT1", "MR1")
    assert (listen.timeouts.acse, listen.timeouts.dimse, listen.timeouts.network) == (4, 5, 60)
    assert listen.spool == tmp_path
