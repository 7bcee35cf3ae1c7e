"""Fault injection for the emulator: what goes wrong, for which request, decided deterministically.

This module only *decides* (and keeps byte-count events; the log is `requestlog`); `faultwire`
applies the decision to the wire. A decision is a `Fault(kind, arg, at)`.

SPEC grammar (``--faults SPEC`` or ``Faults(SPEC)``)::

    SPEC   := ITEM ( ("," | ";") ITEM )*
    ITEM   := "seed=" INT                  seed of the per-request draw (default 0)
            | "paths=" GLOB ("|" GLOB)*    which request paths rates apply to
                                           (fnmatch, `*` crosses `/`; default
                                           "*/files/*|*/resources/*/files|*/scans/*/files":
                                           file downloads and zips of resources and
                                           scans, not the listings clients make)
            | "methods=" M ("|" M)*        which methods rates apply to (default GET)
            | "delay=" SECONDS             latency added to every matching request
            | "session-max-age=" SECONDS   JSESSIONIDs die this long after creation (→ 401)
            | "ranges=" ("1" | "0")        1: honour Range/If-Range/If-Match and send ETag and
                                           Accept-Ranges (unlike XNAT; for resume tests, §1.9 #10)
            | "catalog-race=" ON_OFF       1: concurrent writes to one resource race like XNAT
                                           1.8's catalog write: the upload whose catalog write
                                           comes second answers 500 ConcurrentModificationException
                                           and its files stay out of the catalog (`catalogs`)
            | "sessions-per-user=" N       a user's (N+1)th concurrent Basic login answers 401,
                                           older sessions live on (XNAT's concurrentMaxSessions,
                                           default 1000; §12; `sessions`)
            | "token-lifetime=" SECONDS    alias tokens issued from now on expire after SECONDS
                                           (XNAT's aliasTokenTimeout, default 2 days; §2.3)
            | "stream=" RATE               per-TCP-connection bandwidth cap, each direction, on
                                           every byte (bodies, listings, uploads, imports); RATE
                                           is bytes/s: `25MB/s`, `512K`, `1G`, `1000000` (K, M, G
                                           = powers of 1024); off by default. Only a SPEC given
                                           at start puts the shaping proxy on the port
                                           (`pacing`); later changes apply to new connections
            | "time:" CLASS "=" SECONDS    server time per request of a route class (`routeclass`:
                                           listing, file, zip wait before answering; put, import,
                                           other after the request was applied); none by default
            | "outage" [":" MODE] "=" START "+" DURATION
                                           MODE `refuse` (default: the port is closed, open
                                           connections are dropped) or `503` (every request gets
                                           503) from START to START+DURATION seconds after the
                                           emulator started listening; data is kept. Tests use
                                           `Emulator.outage()` / `Emulator.end_outage()`
            | FAULT "=" RATE               apply FAULT to this fraction of matching requests
    FAULT  := KIND [":" ARG] ["@" AT]      AT: byte offset ("@1000") or fraction ("@0.5")
    ON_OFF := "1" | "0" | "on" | "off" | "true" | "false" | "yes" | "no"

    KIND            ARG                    effect
    ok              -                      nothing
    latency         seconds (1)            wait, then answer normally
    500|502|503|504 -                      that status with an HTML error page
    error           status (500)           same, any status
    429             Retry-After (2)        429 with `Retry-After: ARG`
    expire          -                      the request's session is invalidated first
                                           (cookie-only requests then get 401)
    redirect-login  -                      302 to /app/template/Login.vm
    login-page      -                      200 text/html login page instead of the answer
    reset           -            AT (.5)   send AT of the body, then RST (SO_LINGER 0)
    truncate        -            AT (.5)   full Content-Length, send AT, then FIN
    chunked-cut     -            AT (.5)   chunked encoding, send AT, close without last chunk
    chunked-short   -            AT (.5)   chunked encoding, send AT, end cleanly (short body)
    cut             -            AT (.5)   send AT with a matching Content-Length (truncated
                                           JSON listing: a clean but broken document)
    json-cut        -            AT (.5)   alias of cut
    stall           seconds (5)  AT (.5)   send AT, stop for ARG seconds, send the rest
    slow            bytes/s (65536)        send the body at that rate
    corrupt         -                      same length, one byte flipped at a seeded offset
    resize          delta bytes (+16)      body and Content-Length differ from the listing
    drop            -                      run the handler (e.g. store an upload or apply an
                                           import), then RST without answering
    busy-processing status (400/409)       "Session processing in progress: T.  Concurrent
                                           modification is discouraged." (XNAT 1.9.2.1)
    busy-concurrent status (400/409)       "Session processing may already be in progress: T.
                                           Concurrent modification is discouraged." (older)
    busy-duplicate  status (400/423)       "Duplicate archive attempt.  Prearchive session
                                           already archiving."
    busy-in-use     status (400/423)       "Duplicate archive attempt.  Destination session in
                                           use."
                                           busy-*: the body is read, nothing is applied; the
                                           status is 400 on /services/import, the archiver's
                                           409/423 on /services/archive, or ARG (`costs`)
    applied         status (500)           run the handler (the import/upload IS applied), then
                                           answer that status (500, 502, 504 …) instead

Import faults (xnat-api §12) go on `POST /services/import` or `/services/archive` through a
script (`faults.script("POST", "*/services/import", ["busy-in-use", "ok"])`) or rates with
``methods=POST,paths=*/services/import``; `drop` there means "applied, then the connection reset".

Example: ``stream=25MB/s,time:listing=0.05,time:import=2,outage:503=60+30``.
Example: ``seed=7,paths=*/files/*|*/resources/*/files,reset=0.05,503=0.02,stall:2@0.3=0.01``.

Rates draw a uniform number from BLAKE2(seed, method, path, n) where n counts earlier matching
requests for that method+path, so a run's faults do not depend on how requests interleave.
Scripts (`Faults.script`) take precedence over rates: the k-th matching request gets the k-th
listed fault, and rates resume once the list is exhausted.

Catalog-race hooks (tests): `on_catalog_read(glob)` gives an event set once an upload to a
matching path has read its resource's catalog (opened its window); `hold_catalog_write(glob)`
stops the next matching upload just before its catalog write until the test releases it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
from collections import Counter
from dataclasses import dataclass, field

from xnatsync.emulator.costs import (
    BUSY_MESSAGES,
    OutageSchedule,
    parse_outage,
    parse_rate,
    parse_seconds,
)
from xnatsync.emulator.routeclass import CLASSES, route_class

BODY_KINDS = frozenset(
    {"reset", "truncate", "chunked-cut", "chunked-short", "cut", "stall", "slow", "corrupt",
     "resize", "drop", "login-page"}
)  # fmt: skip
PRE_KINDS = frozenset({"latency", "error", "429", "expire", "redirect-login"})
IMPORT_KINDS = frozenset({*BUSY_MESSAGES, "applied"})
_DEFAULT_ARG = {
    "latency": 1.0, "error": 500.0, "429": 2.0, "stall": 5.0, "slow": 65536.0, "resize": 16.0,
    "applied": 500.0,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fault:
    """One decision. `arg` is seconds, status, rate or delta by kind; `at` an offset spec."""

    kind: str
    arg: float = 0.0
    at: float = 0.5  # < 1 or with `at_bytes`: see `cut_offset`
    at_bytes: bool = False

    def cut_offset(self, total: int) -> int:
        """Where a body fault strikes, as a byte offset within `total` bytes."""
        offset = int(self.at) if self.at_bytes else int(total * self.at)
        return max(0, min(offset, total))

    def __str__(self) -> str:
        return self.kind if self.kind == "ok" else f"{self.kind}:{self.arg:g}@{self.at:g}"


OK = Fault("ok")


DEFAULT_PATHS = ("*/files/*", "*/resources/*/files", "*/scans/*/files")  # files, zips


def parse_fault(token: str) -> Fault:
    """Parse `KIND[:ARG][@AT]` (see the module docstring)."""
    token = token.strip()
    at, at_bytes = 0.5, False
    if "@" in token:
        token, at_text = token.split("@", 1)
        at_bytes = "." not in at_text
        at = float(at_text)
    kind, _, arg_text = token.partition(":")
    if kind in {"500", "502", "503", "504"}:
        return Fault("error", float(kind), at, at_bytes)
    if kind == "json-cut":
        kind = "cut"
    if kind not in BODY_KINDS | PRE_KINDS | IMPORT_KINDS | {"ok"}:
        raise ValueError(f"unknown fault kind {kind!r}")
    arg = float(arg_text) if arg_text else _DEFAULT_ARG.get(kind, 0.0)
    return Fault(kind, arg, at, at_bytes)


@dataclass(slots=True)
class _Script:
    method: str
    glob: str
    faults: list[Fault]


@dataclass(slots=True)
class _Watch:
    glob: str
    threshold: int
    event: asyncio.Event


@dataclass(slots=True)
class CatalogHold:
    """A pause before one upload's catalog write: `reached` is set when the upload waits there,
    setting `release` lets it go on."""

    glob: str
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


_ON = {"1": True, "on": True, "true": True, "yes": True}
_OFF = {"0": False, "off": False, "false": False, "no": False}


def parse_switch(value: str) -> bool:
    """An on/off switch value (see ON_OFF in the module docstring)."""
    try:
        return {**_ON, **_OFF}[value.strip().lower()]
    except KeyError:
        raise ValueError(f"{value!r} is not one of 1/0, on/off, true/false, yes/no") from None


def _positive(value: str, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a positive number") from None
    if number <= 0:
        raise ValueError(f"{value!r} is not a positive number")
    return number


class Faults:
    """Rates from a SPEC, scripted per-request faults, and byte-count events."""

    def __init__(self, spec: str = "") -> None:
        self.seed = 0
        self.paths: list[str] = list(DEFAULT_PATHS)
        self.methods: set[str] = {"GET"}
        self.delay = 0.0
        self.session_max_age: float | None = None
        self.honour_ranges = False
        self.catalog_race = False
        self.sessions_per_user: int | None = None
        self.token_lifetime: float | None = None
        self.stream_rate: float | None = None
        self.server_time: dict[str, float] = {}
        self.outages = OutageSchedule()
        self.rates: list[tuple[Fault, float]] = []
        self._scripts: list[_Script] = []
        self._seen: Counter[tuple[str, str]] = Counter()
        self._watches: list[_Watch] = []
        self._catalog_reads: list[_Watch] = []
        self._catalog_holds: list[CatalogHold] = []
        self.configure(spec)

    def configure(self, spec: str) -> None:
        """Replace the rate settings with those of a SPEC string (other switches keep their
        values unless the SPEC sets them; outage windows are added to the schedule)."""
        self.rates = []
        for item in spec.replace(";", ",").split(","):
            if item.strip():
                self._configure_item(item.strip())
        if sum(rate for _, rate in self.rates) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")

    def _configure_item(self, item: str) -> None:
        try:
            self._configure(item)
        except ValueError as exc:
            raise ValueError(f"fault spec item {item!r}: {exc}") from None

    def _configure(self, item: str) -> None:
        name, sep, value = item.rpartition("=")
        if not sep:
            raise ValueError("it lacks '='")
        if name == "seed":
            self.seed = int(value)
        elif name == "paths":
            self.paths = value.split("|")
        elif name == "methods":
            self.methods = {m.upper() for m in value.split("|")}
        elif name == "delay":
            self.delay = float(value)
        elif name == "session-max-age":
            self.session_max_age = float(value)
        elif name == "ranges":
            self.honour_ranges = value.lower() in ("1", "true", "yes")
        elif name == "catalog-race":
            self.catalog_race = parse_switch(value)
        elif name == "sessions-per-user":
            self.sessions_per_user = int(_positive(value, int))
        elif name == "token-lifetime":
            self.token_lifetime = _positive(value, float)
        elif name == "stream":
            self.stream_rate = parse_rate(value)
        elif name.startswith("time:"):
            self._set_time(name.removeprefix("time:"), value)
        elif name == "outage" or name.startswith("outage:"):
            self.outages.add(parse_outage(name, value))
        else:
            rate = float(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate {rate} outside [0, 1]")
            self.rates.append((parse_fault(name), rate))

    def _set_time(self, route: str, value: str) -> None:
        if route not in CLASSES:
            raise ValueError(f"unknown route class {route!r} (one of {', '.join(CLASSES)})")
        self.server_time[route] = parse_seconds(value)

    def time_for(self, method: str, path: str, query: str = "") -> tuple[str, float]:
        """The route class of a request and the server time the SPEC gives it (0: none)."""
        route = route_class(method, path, query)
        return route, self.server_time.get(route, 0.0)

    def script(self, method: str, glob: str, faults: list[str | Fault]) -> None:
        """Give the 1st, 2nd, … request matching method (`*` = any) and glob these faults."""
        parsed = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        self._scripts.append(_Script(method.upper(), glob, parsed))

    def clear(self) -> None:
        """Drop scripts, rates and watches (the log is kept elsewhere)."""
        self._scripts.clear()
        self.rates = []
        self.delay = 0.0
        self.session_max_age = None
        self.honour_ranges = False
        self.catalog_race = False
        self.sessions_per_user = None
        self.token_lifetime = None
        self.stream_rate = None
        self.server_time = {}
        self.outages.clear()
        self._watches.clear()
        self._catalog_reads.clear()
        self._catalog_holds.clear()

    def matches_rates(self, method: str, path: str) -> bool:
        """Whether the rate settings apply to this request."""
        return method in self.methods and any(fnmatch.fnmatchcase(path, g) for g in self.paths)

    def choose(self, method: str, path: str) -> Fault:
        """The fault for this request (scripts first, then rates); `OK` for none."""
        for script in self._scripts:
            wanted = script.faults and script.method in ("*", method)
            if wanted and fnmatch.fnmatchcase(path, script.glob):
                return script.faults.pop(0)
        if not self.rates or not self.matches_rates(method, path):
            return OK
        attempt = self._seen[(method, path)]
        self._seen[(method, path)] += 1
        draw = self._draw(f"{method} {path} {attempt}")
        for fault, rate in self.rates:
            if draw < rate:
                return fault
            draw -= rate
        return OK

    def _draw(self, text: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}|{text}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def corrupt_offset(self, path: str, size: int) -> int:
        """The seeded offset of the byte `corrupt` flips in a body of `size` bytes."""
        return int(self._draw(f"corrupt {path}") * size) if size else 0

    def on_bytes_sent(self, glob: str, threshold: int) -> asyncio.Event:
        """An event set once a response body for a path matching `glob` has sent `threshold`
        bytes. While a watch is pending, matching bodies are streamed in counted chunks."""
        watch = _Watch(glob, threshold, asyncio.Event())
        self._watches.append(watch)
        return watch.event

    def watching(self, path: str) -> bool:
        """Whether some pending watch wants byte counts for this path."""
        return any(
            not w.event.is_set() and fnmatch.fnmatchcase(path, w.glob) for w in self._watches
        )

    def bytes_sent(self, path: str, sent: int) -> None:
        """Report progress of one body; sets the events whose threshold is reached."""
        for watch in self._watches:
            if sent >= watch.threshold and fnmatch.fnmatchcase(path, watch.glob):
                watch.event.set()

    def on_catalog_read(self, glob: str) -> asyncio.Event:
        """An event set once an upload to a path matching `glob` has read its catalog."""
        watch = _Watch(glob, 0, asyncio.Event())
        self._catalog_reads.append(watch)
        return watch.event

    def catalog_read(self, path: str) -> None:
        """Report that an upload to `path` read its catalog (sets matching events)."""
        for watch in self._catalog_reads:
            if fnmatch.fnmatchcase(path, watch.glob):
                watch.event.set()

    def hold_catalog_write(self, glob: str) -> CatalogHold:
        """Stop the next upload to a path matching `glob` just before its catalog write."""
        hold = CatalogHold(glob)
        self._catalog_holds.append(hold)
        return hold

    async def catalog_write(self, path: str) -> None:
        """Called by an upload about to write its catalog: waits while a hold applies."""
        for hold in self._catalog_holds:
            if not hold.reached.is_set() and fnmatch.fnmatchcase(path, hold.glob):
                hold.reached.set()
                await hold.release.wait()
                return
