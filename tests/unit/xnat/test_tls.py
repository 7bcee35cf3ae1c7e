"""TLS (§1.9 row 27): an untrusted certificate is a clear, fatal error; --ca-bundle fixes it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from xnatsync.cli.pull import tls_context
from xnatsync.errors import TlsError
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

DATA = Path(__file__).parents[2] / "data"
CERT, KEY = DATA / "selfsigned.pem", DATA / "selfsigned.key"


@pytest.fixture
async def tls_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A tiny HTTPS server with a self-signed certificate that accepts one login."""
    seen: list[str] = []

    async def login(request: web.Request) -> web.Response:
        seen.append(request.method)
        return web.Response(text="0123456789ABCDEF0123456789ABCDEF")

    async def logout(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_post("/data/JSESSION", login)
    app.router.add_delete("/data/JSESSION", logout)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, KEY)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_an_untrusted_certificate_is_fatal_and_says_what_to_do(
    tls_server: tuple[str, list[str]],
) -> None:
    url, seen = tls_server
    client = XnatClient(url, Credentials("admin", "s3cret-sentinel"))
    with pytest.raises(TlsError) as caught:
        async with client:
            pass
    assert caught.value.fatal
    assert caught.value.exit_code == 3
    assert "--ca-bundle" in str(caught.value)
    assert "s3cret-sentinel" not in str(caught.value)
    assert seen == []  # the password never left: no login reached the server


async def test_the_ca_bundle_makes_it_trusted(tls_server: tuple[str, list[str]]) -> None:
    url, seen = tls_server
    async with XnatClient(url, Credentials("admin", "admin"), ssl=tls_context(str(CERT), False)):
        pass
    assert seen == ["POST"]


async def test_insecure_skips_the_check(tls_server: tuple[str, list[str]]) -> None:
    url, seen = tls_server
    async with XnatClient(url, Credentials("admin", "admin"), ssl=tls_context(None, True)):
        pass
    assert seen == ["POST"]
