"""Assembly of the emulator's aiohttp application: middlewares (faults outermost, then a store
flusher, then auth), the route modules, and the shared objects stored under app keys.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Middleware

from xnatsync.emulator import (
    assessors,
    auth,
    catalog_refresh,
    experiments,
    files,
    hierarchy,
    importer,
    reconstructions,
    resources,
    saved_search,
    schema,
    search_routes,
    sharing,
    upload,
    usercache,
    xapi_download,
)
from xnatsync.emulator.common import (
    CONFIG_KEY,
    FAULTS_KEY,
    LOG_KEY,
    STORE_KEY,
    Handler,
    unrouted_middleware,
)
from xnatsync.emulator.faults import Faults
from xnatsync.emulator.faultwire import fault_middleware, strip_range_headers
from xnatsync.emulator.requestlog import RequestLog
from xnatsync.emulator.sessions import Sessions
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.emulator.store import Store

PERSIST_KEY: web.AppKey[bool] = web.AppKey("xnat_persist", bool)


def _flusher(interval: float) -> Middleware:
    """Save a dirty store after a request, at most once per `interval` (and at shutdown)."""
    last = [0.0]

    @web.middleware
    async def flush(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            store = request.app[STORE_KEY]
            now = time.monotonic()
            if request.app[PERSIST_KEY] and store.dirty and now - last[0] >= interval:
                last[0] = now
                store.save()

    return flush


def build_app(
    store: Store,
    config: EmulatorConfig,
    faults: Faults,
    *,
    log: RequestLog | None = None,
    persist: bool = True,
) -> web.Application:
    """The whole emulator as one `web.Application`; `persist=False` never writes metadata."""
    app = web.Application(
        middlewares=[
            fault_middleware,
            _flusher(config.flush_interval),
            auth.auth_middleware,
            unrouted_middleware,
        ],
        client_max_size=1 << 30,
    )
    app[STORE_KEY] = store
    app[CONFIG_KEY] = config
    app[FAULTS_KEY] = faults
    app[LOG_KEY] = log if log is not None else RequestLog()
    app[PERSIST_KEY] = persist
    app[auth.SESSIONS_KEY] = Sessions(config.users(), config.session_timeout, config.token_timeout)
    app.on_response_prepare.append(strip_range_headers)
    for module in (auth, hierarchy, experiments, assessors, sharing, resources, files, upload):
        module.add_routes(app)
    reconstructions.add_routes(app)
    catalog_refresh.add_routes(app)
    usercache.add_routes(app)
    xapi_download.add_routes(app)
    importer.add_routes(app)
    schema.add_routes(app)
    saved_search.add_routes(app)
    search_routes.add_routes(app)
    return app
