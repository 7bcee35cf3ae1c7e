"""Baselines measured beside xnatsync: the R3t download loop and the listing-only loop.

R3t (reference file §2.5): raw aiohttp GETs of a precomputed URL list at a fixed concurrency;
each body is buffered, then one worker-thread hop hashes it (MD5), writes it to a temp name and
renames it. Bodies over 8 MiB are not buffered (a 1 GiB file would cost 2 GiB of memory):
they are hashed and written inline as they arrive, the reference file's R3 for one stream.
No journal, no verification against a listing, no layout: the floor of the work xnatsync does.
``listing`` issues exactly the listing requests a pull makes, and nothing else. ``md5tree``
reads and MD5s every file below a folder once, one after another, as ``md5sum`` would: the
floor of adopting a mirror whose journal is gone. ``upload`` is the push floor (PUT loop):
the sessions and scans of a tree in the pull layout created by label, then every file PUT in
the body with raw aiohttp at a fixed concurrency, each read in one worker-thread hop; no MD5,
no diff against the server, no check afterwards.

Usage::

    python -m benchmarks.reference download URL USER PASSWORD URLS_FILE DEST CONCURRENCY
    python -m benchmarks.reference listing URL USER PASSWORD PROJECT CONCURRENCY
    python -m benchmarks.reference md5tree DIR
    python -m benchmarks.reference upload URL USER PASSWORD TREE PROJECT CONCURRENCY
    python -m benchmarks.reference importzip URL USER PASSWORD SOURCE PROJECT CONCURRENCY
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import aiohttp

from benchmarks.studyzip import archive_destination, study_folders, write_zip


def basic(user: str, password: str) -> dict[str, str]:
    """HTTP Basic credentials as a header (aiohttp's BasicAuth is deprecated)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


async def login(http: aiohttp.ClientSession, user: str, password: str) -> None:
    async with http.post("/data/JSESSION", headers=basic(user, password)) as response:
        response.raise_for_status()
        http.cookie_jar.update_cookies({"JSESSIONID": (await response.text()).strip()})


def _store(dest: Path, index: int, body: bytes) -> str:
    digest = hashlib.md5(body).hexdigest()
    temp = dest / f".{index}.part"
    with open(temp, "wb") as f:
        f.write(body)
    os.replace(temp, dest / str(index))
    return digest


BUFFER_LIMIT = 8 << 20


async def _stream(response: aiohttp.ClientResponse, dest: Path, index: int) -> str:
    md5 = hashlib.md5()
    temp = dest / f".{index}.part"
    with open(temp, "wb") as f:  # noqa: ASYNC230 - inline writes are what R3 measures
        async for chunk in response.content.iter_chunked(1 << 20):
            md5.update(chunk)
            f.write(chunk)
    os.replace(temp, dest / str(index))
    return md5.hexdigest()


async def download(url: str, user: str, password: str, urls: list[str], dest: Path, n: int) -> None:
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(urls):
        queue.put_nowait(item)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, timeout=timeout, cookie_jar=jar) as http:
        await login(http, user, password)

        async def worker() -> None:
            while not queue.empty():
                index, path = queue.get_nowait()
                async with http.get(path) as response:
                    response.raise_for_status()
                    if (response.content_length or 0) > BUFFER_LIMIT:
                        await _stream(response, dest, index)
                        continue
                    chunks = [c async for c in response.content.iter_chunked(256 * 1024)]
                await asyncio.to_thread(_store, dest, index, b"".join(chunks))

        await asyncio.gather(*(worker() for _ in range(n)))


async def listing(url: str, user: str, password: str, project: str, n: int) -> None:
    """The requests of a pull's listing stage, at the same listing concurrency."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
        await login(http, user, password)
        limit = asyncio.Semaphore(n)

        async def get(path: str) -> dict[str, object]:
            async with limit, http.get(path, params={"format": "json"}) as response:
                response.raise_for_status()
                data: dict[str, object] = await response.json(content_type=None)
                return data

        def rows(data: dict[str, object]) -> list[dict[str, str]]:
            result_set = data["ResultSet"]
            assert isinstance(result_set, dict)
            return list(result_set["Result"])

        base = f"/data/projects/{project}"
        experiments = rows(await get(f"{base}/experiments"))
        subjects = rows(await get(f"{base}/subjects"))
        paths = [f"{base}/files"]  # a project's or subject's own files name their resources
        for exp in experiments:
            paths += [
                f"/data/experiments/{exp['ID']}/resources",
                f"/data/experiments/{exp['ID']}/files",
            ]
        paths += [f"{base}/subjects/{sub['ID']}/files" for sub in subjects]
        await asyncio.gather(*(get(p) for p in paths))


def md5tree(root: Path) -> int:
    """MD5 of every file below ``root`` (``.xnatsync`` left out); how many files."""
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".xnatsync"]
        for name in files:
            md5 = hashlib.md5(usedforsecurity=False)
            with open(os.path.join(folder, name), "rb", buffering=0) as f:
                while block := f.read(4 << 20):
                    md5.update(block)
            count += 1
    return count


def tree_files(tree: Path) -> list[tuple[str, str, str, str, Path]]:
    """(subject, session, scan folder, resource path below the scan, file) of a pulled tree
    (its one project folder; scan resources only, as the benchmark's synthetic project has)."""
    out = []
    for path in sorted(tree.rglob("*")):
        parts = path.relative_to(tree).parts
        if path.is_file() and ".xnatsync" not in parts and len(parts) > 5 and parts[3] == "scans":
            out.append((parts[1], parts[2], parts[4], "/".join(parts[5:]), path))
    return out


async def upload(url: str, user: str, password: str, tree: Path, project: str, n: int) -> None:
    files = tree_files(tree)
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(url, timeout=timeout, cookie_jar=jar) as http:
        await login(http, user, password)
        limit = asyncio.Semaphore(n)

        async def put(path: str, data: bytes | None = None, **params: str) -> None:
            headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
            async with http.put(path, data=data, params=params, headers=headers) as r:
                r.raise_for_status()
                await r.read()

        async def limited(path: str, **params: str) -> None:
            async with limit:
                await put(path, None, **params)

        base = f"/data/projects/{project}/subjects"
        sessions = sorted({(s, e) for s, e, _, _, _ in files})
        await asyncio.gather(*(limited(f"{base}/{s}/experiments/{e}", xsiType="xnat:mrSessionData")
                               for s, e in sessions))  # fmt: skip
        scans = sorted({(s, e, c) for s, e, c, _, _ in files})
        await asyncio.gather(*(
            limited(f"{base}/{s}/experiments/{e}/scans/{c.split('-', 1)[0]}",
                    xsiType="xnat:mrScanData")
            for s, e, c in scans
        ))  # fmt: skip

        async def send(s: str, e: str, c: str, rest: str, path: Path) -> None:
            async with limit:  # a file is read only when its request may go
                data = await asyncio.to_thread(path.read_bytes)
                scan = c.split("-", 1)[0]
                await put(f"{base}/{s}/experiments/{e}/scans/{scan}/{rest}", data, inbody="true")

        await asyncio.gather(*(send(*f) for f in files))


async def import_zips(
    url: str, user: str, password: str, source: Path, project: str, n: int
) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(url, timeout=timeout, cookie_jar=jar) as http:
        await login(http, user, password)
        limit = asyncio.Semaphore(n)

        async def send(subject: str, session: str, folder: Path) -> None:
            async with limit:
                with tempfile.TemporaryDirectory(prefix="zip-post-") as temp:
                    target = Path(temp) / "study.zip"
                    await asyncio.to_thread(write_zip, folder, target)
                    params = {"import-handler": "DICOM-zip", "overwrite": "append",
                              "dest": archive_destination(project, subject, session)}  # fmt: skip
                    headers = {"Content-Type": "application/zip"}
                    with target.open("rb") as body:  # sent with its length (aiohttp stats it)
                        async with http.post("/data/services/import", params=params,
                                             data=body, headers=headers) as r:  # fmt: skip
                            r.raise_for_status()
                            await r.read()

        await asyncio.gather(*(send(*study) for study in study_folders(source)))


def main(argv: list[str]) -> None:
    if argv[0] == "md5tree":
        print(md5tree(Path(argv[1])))
        return
    mode, url, user, password = argv[:4]
    if mode == "importzip":
        source, project, n = Path(argv[4]), argv[5], int(argv[6])
        asyncio.run(import_zips(url, user, password, source, project, n))
    elif mode == "upload":
        tree, project, n = Path(argv[4]), argv[5], int(argv[6])
        asyncio.run(upload(url, user, password, tree, project, n))
    elif mode == "download":
        urls = Path(argv[4]).read_text().split()
        Path(argv[5]).mkdir(parents=True, exist_ok=True)
        asyncio.run(download(url, user, password, urls, Path(argv[5]), int(argv[6])))
    else:
        asyncio.run(listing(url, user, password, argv[4], int(argv[5])))


if __name__ == "__main__":
    main(sys.argv[1:])
