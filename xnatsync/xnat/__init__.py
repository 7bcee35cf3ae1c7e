"""The XNAT client: routes (paths, pure), parse (responses → values and errors, pure),
auth (credentials, single-flight session), pacing (rate limits), client (one aiohttp session)."""

from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import Body, XnatClient

__all__ = ["Body", "Credentials", "XnatClient"]
