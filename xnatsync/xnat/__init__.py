"""The XNAT client: routes (paths, pure), parse (responses → values and errors, pure),
auth (credentials, single-flight session), pacing (rate limits), http (the aiohttp boundary:
errors, paths, streamed bodies), client (one aiohttp session)."""

from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient
from xnatsync.xnat.http import Body

__all__ = ["Body", "Credentials", "XnatClient"]
