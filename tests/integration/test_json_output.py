"""--log-json: stderr is JSON lines only, ending with one summary (issue 7, item 7). (Without
it, no summary line comes before a fatal error: test_cli's file-too-large test.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.conftest import cli_env, run_cli
from xnatsync.emulator.server import Emulator


def pull(emu: Emulator, dest: Path, *extra: str) -> list[str]:
    return ["pull", emu.url, "--project", "SYNTH", "--dest", str(dest), "--attempts", "2", *extra]


def json_lines(err: str) -> list[dict[str, Any]]:
    lines = err.splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # raises on any line that is not JSON


async def test_stderr_is_json_lines_ending_with_the_summary(
    synth: Emulator, tmp_path: Path
) -> None:
    code, out, err = await run_cli(*pull(synth, tmp_path / "d", "--log-json"))
    assert code == 0, err
    records = json_lines(err)
    last = records[-1]
    assert last["event"] == "Summary"
    assert last["status"] == "ok"
    assert last["files_transferred"] == 16
    assert last["exit_code"] == 0
    assert sum(r["event"] == "Summary" for r in records) == 1
    assert out == ""


async def test_a_fatal_error_is_a_json_line_too(synth: Emulator, tmp_path: Path) -> None:
    code, _, err = await run_cli(*pull(synth, tmp_path / "d", "--log-json"),
                                 env=cli_env("admin", "wrong"))  # fmt: skip
    assert code == 3
    last = json_lines(err)[-1]
    assert last["event"] == "Summary"
    assert last["status"] == "error"
    assert "rejected" in last["error"]
    assert last["exit_code"] == 3


async def test_retries_logged_by_the_client_are_json_lines_too(tmp_path: Path) -> None:
    """A login retried against a refused port is logged by the client: under --log-json that
    log line is a JSON record, not text mixed into the stream."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["pull", f"http://127.0.0.1:{port}", "--project", "P", "--dest", str(tmp_path / "d"),
            "--attempts", "2", "--log-json"]  # fmt: skip
    code, _, err = await run_cli(*args)
    assert code == 5, err
    records = json_lines(err)
    assert any(r["event"] == "Log" and "retrying" in r["message"] for r in records)
    assert records[-1]["event"] == "Summary"
