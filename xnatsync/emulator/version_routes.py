"""The emulator's version-dependent wiring: the version an app answers as, and the one route
only old servers have (`GET /data/version`, 1.6). The values themselves are `xnat_version`'s,
which imports no web framework: the command line reads them at every start."""

from __future__ import annotations

from aiohttp import web

from xnatsync.emulator.xnat_version import DEFAULT_VERSION, XnatVersion

VERSION_KEY: web.AppKey[XnatVersion] = web.AppKey("xnat_version", XnatVersion)


def version_of(request: web.Request) -> XnatVersion:
    """The version the app answers as (the default if none was set)."""
    return request.app.get(VERSION_KEY) or XnatVersion.parse(DEFAULT_VERSION)


async def data_version(request: web.Request) -> web.Response:
    """GET /data/version on a 1.6 server: the bare version as text."""
    return web.Response(text=version_of(request).text, content_type="text/plain")


def add_routes(app: web.Application, version: str) -> None:
    """Remember the version; route `/data/version` only where XNAT has it (1.6), so on 1.7+ it
    is unrouted like on the real server."""
    parsed = XnatVersion.parse(version)
    app[VERSION_KEY] = parsed
    if not parsed.has_xapi:
        for prefix in ("/data", "/REST"):
            app.router.add_get(prefix + "/version", data_version)
