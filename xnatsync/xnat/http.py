"""The aiohttp boundary of the client: exceptions become ``TransportError`` here, listed file
URIs become request paths here, and response bodies stream out through ``Body``.

Nothing here formats a message unless something failed: these run per request and per chunk.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from urllib.parse import quote

import aiohttp
from yarl import URL

from xnatsync.errors import BadResponseError, TlsError, TransportError, redact
from xnatsync.limits import Timeouts
from xnatsync.model import RemoteFile
from xnatsync.xnat.pacing import Pacer

_PATH_SAFE = "/%" + "!$&'()*,;=:@~"  # keep existing escapes; "+" is always encoded
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@contextmanager
def transport_errors(method: str, url: str | URL, timeouts: Timeouts) -> Iterator[None]:
    """Convert aiohttp and OS exceptions raised inside the block into ``TransportError``.

    Entered per request and per chunk: nothing is formatted unless something went wrong."""
    try:
        yield
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
        raise TlsError(
            f"{method} {redact(str(url))}: the server's TLS certificate is not trusted or the "
            f"TLS handshake failed ({_reason(exc)}); pass --ca-bundle FILE with the CA that "
            "signed it (--insecure skips the check, and with it all protection in transit)"
        ) from None
    except aiohttp.SocketTimeoutError:
        detail = f"no data for {timeouts.read_stall:g} s (read stall)"
    except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError, TimeoutError):
        detail = (
            f"timed out connecting ({timeouts.connect:g} s) "
            f"or waiting for a pooled connection ({timeouts.pool:g} s)"
        )
    except aiohttp.ClientConnectorError as exc:  # refused, unresolvable, unreachable
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        detail = f"cannot connect to {exc.host}:{exc.port} ({redact(reason)})"
    except aiohttp.ClientPayloadError as exc:
        detail = f"body incomplete ({describe(exc)})"
    except aiohttp.ServerDisconnectedError as exc:
        detail = f"server disconnected ({describe(exc)})"
    except (aiohttp.ClientError, OSError) as exc:
        detail = describe(exc)
    else:
        return
    raise TransportError(f"{method} {redact(str(url))}: {detail}") from None


def _reason(exc: aiohttp.ClientSSLError) -> str:
    cert_error = getattr(exc, "certificate_error", None)
    return redact(str(cert_error)) if cert_error is not None else describe(exc)


def describe(exc: BaseException) -> str:
    text = redact(" ".join(str(exc).split()))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def sent_to_login(response: aiohttp.ClientResponse, requested: URL) -> bool:
    """Whether a redirect led elsewhere, to the login page (``/app/template/Login.vm``,
    ``/login``): XNAT's other way of saying the session is gone."""
    final = response.url.path
    page = final.rstrip("/").rsplit("/", 1)[-1].lower()
    return bool(response.history) and final != requested.path and page.startswith("login")


def request_path(uri: str) -> str:
    """A listed file URI as a request path below the base URL (never another host)."""
    if not uri.startswith("/") or uri.startswith("//") or _CONTROL.search(uri):
        raise BadResponseError(f"refusing to fetch {redact(uri)!r}: not a server path")
    return quote(uri, safe=_PATH_SAFE)


class Body:
    """The streamed body of a successful download."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        url: str,
        timeouts: Timeouts,
        pacer: Pacer | None,
    ) -> None:
        self._response = response
        self._url = url
        self._timeouts = timeouts
        self._pacer = pacer
        self.content_length: int | None = response.content_length
        self.content_type: str = response.content_type

    async def chunks(self, size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """Chunks of at most ``size`` bytes; a truncated or stalled body raises TransportError."""
        stream = self._response.content
        while True:
            with transport_errors("GET", self._url, self._timeouts):
                chunk = await stream.read(size)
            if not chunk:
                return
            if self._pacer is not None:
                await self._pacer.acquire(len(chunk))
            yield chunk


class OwnerListing:
    """One owner's listings as fetched: an MD5 ``fingerprint`` of the exact response bytes, and
    ``files()``, which parses them (only when the caller needs the files: an unchanged
    fingerprint lets a no-op run skip parsing altogether)."""

    def __init__(self, fingerprint: str, parsed: Callable[[], list[RemoteFile]]) -> None:
        self.fingerprint = fingerprint
        self._parsed = parsed

    def files(self) -> list[RemoteFile]:
        return self._parsed()
