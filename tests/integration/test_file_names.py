"""File names XNAT cannot take from a URL as they are: its FileList decodes a file path only when
it holds ``%20`` or ``%2B`` (xnat-api §4.1), so ``ü.bin`` asked for as ``%C3%BC.bin`` is a file
called ``%C3%BC.bin`` there. pull fetches such files through their resource's zip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from tests.integration.conftest import local_files, make_config, run_pull, server_request
from xnatsync.emulator.server import Emulator

RESOURCE = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/resources/ODD/files"


async def test_a_name_xnat_cannot_serve_by_url_is_pulled_through_the_resource_zip(
    emu: Emulator, tmp_path: Path
) -> None:
    files = {"ü.bin": b"u" * 3_000_000, "a%b.txt": b"pct", "c d.txt": b"space"}
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    url = f"{RESOURCE}/odd.zip?extract=true&inbody=true"
    assert await server_request(emu, "PUT", url, body.getvalue()) == 200  # small: compressed
    # asked for by URL, XNAT looks for a file named as the escaped text, which is not there
    assert await server_request(emu, "GET", f"{RESOURCE}/%C3%BC.bin") == 404
    summary, _ = await run_pull(make_config(emu, tmp_path))
    assert summary.ok, summary.failures
    base = "DEMO/DEMO01/DEMO01_MR1/resources/ODD/files/"
    got = {p.removeprefix(base): b for p, b in local_files(tmp_path).items() if p.startswith(base)}
    assert got == files
