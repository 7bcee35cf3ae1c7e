"""Exit codes that match the table (issue 7, item 5).

A project that does not exist or that the user cannot see (XNAT answers 404 for both) is exit
3, naming both, while the other projects are still pulled; a server that cannot be reached, or
that is not an XNAT, is exit 5, which a cron wrapper may retry; no "0 failed" beside a
non-zero exit; no mention of ssl for a plain http URL.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.conftest import local_files, run_cli
from xnatsync.emulator.server import Emulator
from xnatsync.errors import ExitCode


def pull(url: str, dest: Path, *projects: str) -> list[str]:
    args = ["pull", url, "--dest", str(dest), "--no-progress", "--attempts", "2"]
    for project in projects:
        args += ["--project", project]
    return args


async def test_a_project_the_user_cannot_see_is_exit_3_naming_project_and_user(
    emu: Emulator, tmp_path: Path
) -> None:
    code, _, err = await run_cli(*pull(emu.url, tmp_path, "NOSUCH"))
    assert code == ExitCode.AUTH, err
    assert code == 3
    assert "NOSUCH" in err
    assert "admin" in err
    assert "0 failed" not in err


async def test_the_other_projects_are_still_pulled(emu: Emulator, tmp_path: Path) -> None:
    code, _, err = await run_cli(*pull(emu.url, tmp_path, "DEMO", "NOSUCH"))
    assert code == 3, err
    assert "NOSUCH" in err
    assert any(p.startswith("DEMO/") for p in local_files(tmp_path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_exit_5_without_ssl_talk(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await run_cli(*pull(url, tmp_path / "d", "P"))
    assert code == ExitCode.UNREACHABLE, err
    assert code == 5
    assert "cannot reach" in err
    assert "ssl" not in err.lower()
    assert "0 failed" not in err
    assert not (tmp_path / "d").exists()


@pytest.fixture
async def not_xnat() -> AsyncIterator[str]:
    """A web server that is no XNAT: a 404 page for everything, as most servers would send."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="<html>Not Found</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_server_that_is_not_xnat_says_so_with_exit_5(not_xnat: str, tmp_path: Path) -> None:
    code, _, err = await run_cli(*pull(not_xnat, tmp_path / "d", "P"))
    assert code == 5, err
    assert "not an XNAT server" in err
    assert not (tmp_path / "d").exists()
