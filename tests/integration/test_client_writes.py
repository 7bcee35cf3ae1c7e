"""The client's write calls against the emulator: creating subjects, sessions and scans by
label, uploading in the body with a known length, an empty file as multipart, and the
``{"duplicates": …}`` answer to a file that exists (xnat-api §4.4, §4.5)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from xnatsync.emulator.server import Emulator
from xnatsync.xnat import routes
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient


def chunks_of(data: bytes, block: int = 7) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), block):
            yield data[i : i + block]

    return gen()


async def test_create_by_label_upload_and_read_back(emu: Emulator) -> None:
    async with XnatClient(emu.url, Credentials("admin", "admin")) as client:
        session_id = await client.put_object(
            routes.session("DEMO", "NEW01", "NEW01_MR", "xnat:mrSessionData")
        )
        assert session_id.startswith("XNAT_E")
        assert await client.put_object(routes.subject("DEMO", "NEW01")) != ""  # exists: its ID
        await client.put_object(
            routes.scan("DEMO", "NEW01", "NEW01_MR", "7", "xnat:mrScanData", "T1w")
        )
        owner = routes.owner_path("DEMO", "NEW01", "NEW01_MR", "7")
        data = b"some bytes, several chunks of them"
        target = routes.resource_file(owner, "NIFTI", "sub/a b+c.nii", overwrite=False)
        assert await client.upload(target, len(data), lambda: chunks_of(data)) == ""
        empty = routes.resource_file(owner, "NIFTI", "empty.txt", overwrite=False)
        await client.upload(empty, 0, lambda: chunks_of(b""))
        again = await client.upload(target, 4, lambda: chunks_of(b"diff"))
        assert "duplicates" in again  # not replaced without overwrite
        [experiment] = [e for e in await client.list_experiments("DEMO") if e.label == "NEW01_MR"]
        files = {f.path: f for f in await client.list_experiment_files("DEMO", experiment)}
    assert set(files) == {"sub/a b+c.nii", "empty.txt"}
    assert files["sub/a b+c.nii"].digest == hashlib.md5(data).hexdigest()
    assert (files["sub/a b+c.nii"].container, files["sub/a b+c.nii"].container_type) == ("7", "T1w")
    assert files["empty.txt"].size in (0, None)
