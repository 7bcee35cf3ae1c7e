"""How the client turns aiohttp's exceptions and XNAT's statuses into our typed errors.

``aioresponses`` stands in for the network here: it is the simplest honest fake for the
exceptions aiohttp raises mid-request (a disconnect, a cut body, a certificate failure), which
a real server can provoke only clumsily. Each test asserts the error the caller sees and how
many requests were made (what the server would have seen), never mock call order.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from functools import partial
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from tests.fakes import FakeTime
from xnatsync.errors import (
    NotFoundError,
    PermissionDeniedError,
    RemoteError,
    TlsError,
    TransientRemoteError,
    TransportError,
    XnatSyncError,
)
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

BASE = "http://xnat.test"
LISTING = re.compile(r"^http://xnat\.test/data/projects/P/experiments\?.*$")
EMPTY = {"ResultSet": {"Result": [], "totalRecords": "0"}}
SESSION_ID = "0123456789ABCDEF0123456789ABCDEF"


class _SentRequest:
    """What a response asks of the writer of a request already sent: how much it sent."""

    output_size = 0


class CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 (the newest) builds responses without the ``stream_writer`` that
    aiohttp 3.14 requires (pnuckowski/aioresponses#289, open); this supplies it."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(method, url, **kwargs)


@pytest.fixture
def net() -> Iterator[aioresponses]:
    with aioresponses() as mocked:
        mocked.get = partial(mocked.get, response_class=CompatResponse)  # type: ignore[method-assign]
        mocked.post(
            f"{BASE}/data/JSESSION", body=SESSION_ID, content_type="text/plain",
            response_class=CompatResponse,
        )  # fmt: skip
        mocked.delete(f"{BASE}/data/JSESSION", body="", response_class=CompatResponse)
        yield mocked


def client(time: FakeTime, attempts: int = 3) -> XnatClient:
    policy = RetryPolicy(attempts=attempts, backoff_base=0.5, backoff_max=4.0)
    return XnatClient(
        BASE, Credentials("alice", "pw"), retry=policy, sleep=time.sleep,
        rand=lambda: 1.0, clock=time.clock,
    )  # fmt: skip


def listing_requests(net: aioresponses) -> int:
    return sum(
        len(calls)
        for (method, url), calls in net.requests.items()
        if method == "GET" and url.path == "/data/projects/P/experiments"
    )


async def list_once(time: FakeTime, attempts: int = 3) -> None:
    async with client(time, attempts) as xnat:
        await xnat.list_experiments("P")


@pytest.mark.parametrize(
    "exception",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("cut"),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        TimeoutError(),
    ],
)
async def test_transport_failures_are_retried_and_then_succeed(
    net: aioresponses, exception: Exception
) -> None:
    net.get(LISTING, exception=exception)
    net.get(LISTING, payload=EMPTY)
    time = FakeTime()
    async with client(time) as xnat:
        assert await xnat.list_experiments("P") == []
    assert listing_requests(net) == 2
    assert time.sleeps == [0.5]


@pytest.mark.parametrize(
    ("exception", "words"),
    [
        (aiohttp.ServerDisconnectedError(), "server disconnected"),
        (aiohttp.ClientPayloadError("cut"), "body incomplete"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "Connection reset by peer"),
        (TimeoutError(), "timed out connecting"),
    ],
)
async def test_transport_failures_that_persist_end_as_a_transport_error(
    net: aioresponses, exception: Exception, words: str
) -> None:
    for _ in range(3):
        net.get(LISTING, exception=exception)
    with pytest.raises(TransportError, match=words) as caught:
        await list_once(FakeTime(), attempts=3)
    assert caught.value.retryable
    assert "GET http://xnat.test/data/projects/P/experiments" in str(caught.value)
    assert listing_requests(net) == 3


async def test_an_untrusted_certificate_is_fatal_and_never_retried(net: aioresponses) -> None:
    key = aiohttp.client_reqrep.ConnectionKey("xnat.test", 443, True, True, None, None, None)
    error = aiohttp.ClientConnectorCertificateError(
        key, ssl.SSLCertVerificationError("self-signed")
    )
    net.get(LISTING, exception=error)
    net.get(LISTING, payload=EMPTY)
    with pytest.raises(TlsError, match="--ca-bundle") as caught:
        await list_once(FakeTime())
    assert caught.value.fatal
    assert listing_requests(net) == 1


@pytest.mark.parametrize(
    ("status", "error", "requests"),
    [
        (403, PermissionDeniedError, 1),
        (404, NotFoundError, 1),
        (400, RemoteError, 1),
        (501, RemoteError, 1),  # not implemented: asking again won't change it
        (502, TransientRemoteError, 3),
        (503, TransientRemoteError, 3),
        (504, TransientRemoteError, 3),
        (408, TransientRemoteError, 3),
    ],
)
async def test_statuses_become_typed_errors_and_only_transient_ones_are_retried(
    net: aioresponses, status: int, error: type[XnatSyncError], requests: int
) -> None:
    for _ in range(3):
        net.get(LISTING, status=status, body="<html>nope</html>", content_type="text/html")
    with pytest.raises(error) as caught:
        await list_once(FakeTime(), attempts=3)
    assert type(caught.value) is error
    assert listing_requests(net) == requests


async def test_retry_after_on_a_503_sets_the_pause(net: aioresponses) -> None:
    net.get(LISTING, status=503, headers={"Retry-After": "3"}, body="busy")
    net.get(LISTING, payload=EMPTY)
    time = FakeTime()
    async with client(time) as xnat:
        assert await xnat.list_experiments("P") == []
    assert time.sleeps == [3.0]
    assert listing_requests(net) == 2
