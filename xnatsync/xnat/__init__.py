"""The XNAT client: routes (paths, pure), parse (responses → values and errors, pure),
auth (credentials, single-flight session), pacing (rate limits), http (the aiohttp boundary:
errors, paths, streamed bodies), client (one aiohttp session).

This package's own init imports nothing: importing the pure ``routes`` or ``parse`` must not
load aiohttp. Import ``XnatClient`` from ``xnatsync.xnat.client``.
"""
