"""The costs of a loaded server as SPEC switches: rates, route classes, server time per class,
outage schedules and the pacing arithmetic (pure), and `time:` on the wire (issue 8)."""

from __future__ import annotations

import time

import aiohttp
import pytest

from xnatsync.emulator.costs import (
    Outage,
    OutageSchedule,
    busy_answer,
    parse_outage,
    parse_rate,
)
from xnatsync.emulator.faults import Faults
from xnatsync.emulator.pacing import Pacer
from xnatsync.emulator.routeclass import route_class
from xnatsync.emulator.server import Emulator

from .emuhelp import call


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- rates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1000000", 1_000_000.0),
        ("1000/s", 1000.0),
        ("512B/s", 512.0),
        ("512K", 512 * 1024.0),
        ("512KB/s", 512 * 1024.0),
        ("512KiB/s", 512 * 1024.0),
        ("25MB/s", 25 * 1024.0**2),
        ("25m", 25 * 1024.0**2),
        ("1.5G", 1.5 * 1024.0**3),
        ("2GiB/s", 2 * 1024.0**3),
    ],
)
def test_parse_rate_units_are_powers_of_1024(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "25 MB per s", "-1M", "0", "25TB/s", "M"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_bad_switch_values_name_the_item() -> None:
    for spec, needle in [
        ("stream=quick", "'stream=quick'.*bad rate"),
        ("time:upload=1", "unknown route class 'upload'"),
        ("time:file=-1", "'time:file=-1'"),
        ("outage=5", "START\\+DURATION"),
        ("outage:down=1+2", "unknown outage mode 'down'"),
        ("outage=1+x", "'outage=1\\+x'"),
        ("busy-nope=1", "unknown fault kind 'busy-nope'"),
    ]:
        with pytest.raises(ValueError, match=needle):
            Faults(spec)


def _switches(faults: Faults) -> tuple[float | None, dict[str, float], list[Outage]]:
    return faults.stream_rate, faults.server_time, faults.outages.windows


def test_switches_are_off_by_default_and_parsed_when_given() -> None:
    off = Faults("")
    assert _switches(off) == (None, {}, [])
    assert off.time_for("GET", "/data/projects") == ("listing", 0.0)
    on = Faults("stream=25MB/s,time:listing=0.05,time:import=2,outage:503=60+30,outage=1+2")
    assert on.stream_rate == 25 * 1024**2
    assert on.server_time == {"listing": 0.05, "import": 2.0}
    assert on.time_for("POST", "/data/services/import") == ("import", 2.0)
    assert on.time_for("GET", "/data/experiments/E/resources/R/files/a.dcm") == ("file", 0.0)
    assert on.outages.windows == [Outage(60.0, 90.0, "503"), Outage(1.0, 3.0, "refuse")]
    on.clear()
    assert _switches(on) == (None, {}, [])


def test_delay_keeps_its_meaning() -> None:
    """`make bench` passes `paths=*/files|*/files/*,delay=S`: only GETs of those paths wait."""
    faults = Faults("paths=*/files|*/files/*,delay=0.004")
    assert faults.delay == 0.004
    assert faults.matches_rates("GET", "/data/experiments/E/resources/R/files")
    assert faults.matches_rates("GET", "/data/experiments/E/resources/R/files/a/b.dcm")
    assert not faults.matches_rates("GET", "/data/projects")
    assert not faults.matches_rates("PUT", "/data/experiments/E/resources/R/files/a")
    assert faults.server_time == {}


def test_busy_answers_carry_xnat_texts_and_statuses() -> None:
    imp, arc = "/data/services/import", "/data/services/archive"
    assert busy_answer("busy-processing", imp, 0, "20240101_120000") == (
        400,
        "Session processing in progress: 20240101_120000.  Concurrent modification is discouraged.",
    )
    status, text = busy_answer("busy-concurrent", arc, 0, "T")
    assert status == 409
    assert "processing in progress" not in text.lower()  # the older wording
    assert "concurrent modification is discouraged" in text.lower()
    assert busy_answer("busy-duplicate", arc, 0, "T")[0] == 423
    assert busy_answer("busy-in-use", "/REST/services/archive", 0, "T") == (
        423,
        "Duplicate archive attempt.  Destination session in use.",
    )
    assert busy_answer("busy-in-use", imp, 503, "T")[0] == 503


# --- route classes ---------------------------------------------------------------------------

_E = "/data/projects/P/subjects/S/experiments/E"
_PRE = "/data/prearchive/projects/P/20240619_091425123/E1"


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/data/projects", "format=json", "listing"),
        ("GET", "/data/projects/P", "format=xml", "listing"),
        ("GET", "/REST/projects/P/subjects", "", "listing"),
        ("GET", "/data/archive/projects/P/subjects/S/experiments", "format=json", "listing"),
        ("GET", _E, "format=xml", "listing"),
        ("GET", "/data/experiments/E/scans", "format=json", "listing"),
        ("GET", "/data/experiments/E/scans/1/resources", "format=json", "listing"),
        ("GET", "/data/experiments/E/scans/1/resources/DICOM/files", "format=json", "listing"),
        ("HEAD", _E + "/resources/R/files", "", "listing"),
        ("GET", "/data/experiments/E/resources/R/files/sub/", "format=json", "listing"),
        ("GET", "/data/prearchive/projects/P", "format=json", "listing"),
        ("GET", "/data/prearchive/projects/P/20240619_091425123/E1/scans", "", "listing"),
        ("GET", "/data/projects/files/subjects", "format=json", "listing"),  # a project "files"
        ("GET", "/data/search/saved", "", "listing"),
        ("GET", "/data/experiments/E/scans/1/resources/DICOM/files/1.dcm", "", "file"),
        ("HEAD", _E + "/resources/R/files/a/b/c.nii.gz", "", "file"),
        ("GET", "/REST/experiments/E/resources/R/files/x.txt", "", "file"),
        ("GET", _E + "/resources/R/files", "index=0", "file"),
        ("GET", _PRE + "/scans/1/resources/DICOM/files/1.dcm", "", "file"),
        ("GET", _E + "/resources/R/files", "format=zip", "zip"),
        ("GET", "/data/experiments/E/assessors/A/out/resources/QC/files", "format=zip", "zip"),
        ("GET", "/data/experiments/E/assessors/A/out/resources/QC/files/q.pdf", "", "file"),
        ("GET", "/data/experiments/E/assessors/A/out/resources", "format=json", "listing"),
        ("PUT", "/data/experiments/E/assessors/A/out/resources/QC", "", "put"),
        ("PUT", "/data/experiments/E/assessors/A/out/resources/QC/files/q.pdf", "", "put"),
        ("GET", "/data/experiments/E/resources/files/files/a.dcm", "", "file"),  # resource "files"
        ("GET", "/data/experiments/E/resources/files", "format=json", "listing"),
        ("GET", "/data/projects/P/subjects/files/experiments", "", "listing"),
        ("GET", "/data/experiments/E/resources/R/files/files", "", "file"),  # a file "files"
        ("GET", "/data/experiments/E/scans/ALL/files", "format=zip", "zip"),
        ("GET", _E + "/resources/R/files/sub/", "format=ZIP", "zip"),
        ("PUT", _E + "/resources/R/files/a.dcm", "inbody=true", "put"),
        ("POST", "/data/experiments/E/scans/1/resources/DICOM/files", "extract=true", "put"),
        ("PUT", _E + "/resources/NEW", "format=DICOM", "put"),
        ("POST", "/data/projects/P/resources/R/files/f.txt", "", "put"),
        ("POST", "/data/services/import", "import-handler=DICOM-zip", "import"),
        ("POST", "/REST/services/import", "", "import"),
        ("POST", "/data/services/archive", "src=/prearchive/projects/P/T/E", "import"),
        ("PUT", "/data/projects/P/subjects/S", "", "other"),
        ("PUT", _E, "xsiType=xnat:mrSessionData", "other"),
        ("DELETE", _E + "/resources/R/files/a.dcm", "", "other"),
        ("POST", "/data/services/refresh/catalog", "resource=/archive/…", "other"),
        ("POST", "/data/JSESSION", "", "other"),
    ],
)
def test_route_class_table(method: str, path: str, query: str, expected: str) -> None:
    assert route_class(method, path, query) == expected


def test_route_class_takes_a_query_mapping() -> None:
    assert route_class("get", _E + "/resources/R/files", {"format": "zip"}) == "zip"
    assert route_class("GET", _E + "/resources/R/files", {"Index": "2"}) == "file"


# --- outages and pacing on an injected clock -------------------------------------------------


def test_outage_schedule_windows_are_relative_to_restart() -> None:
    clock = Clock()
    schedule = OutageSchedule(clock)
    schedule.add(parse_outage("outage:503", "10+5"))
    schedule.add(parse_outage("outage", "12+1"))
    clock.now += 100
    schedule.restart()
    seen = []
    for at in (0, 9.99, 10, 12, 12.5, 13, 14.99, 15, 20):
        clock.now = 1100 + at
        seen.append((schedule.mode(), schedule.next_change()))
    assert seen == [
        (None, 10), (None, pytest.approx(0.01)), ("503", 2), ("refuse", 1), ("refuse", 0.5),
        ("503", 2), ("503", pytest.approx(0.01)), (None, None), (None, None),
    ]  # fmt: skip


def test_outage_begin_and_end_now_notify_listeners() -> None:
    clock = Clock()
    schedule = OutageSchedule(clock)
    calls: list[str] = []
    schedule.listeners.append(lambda: calls.append("changed"))
    schedule.begin(mode="503")
    assert schedule.mode() == "503"
    assert schedule.next_change() is None  # open-ended
    clock.now += 30
    schedule.end()
    assert schedule.mode() is None
    schedule.begin(2.0)
    assert (schedule.mode(), schedule.next_change()) == ("refuse", 2.0)
    clock.now += 2
    assert schedule.mode() is None
    assert calls == ["changed"] * 3
    with pytest.raises(ValueError, match="outage mode"):
        schedule.begin(1, "404")


def test_pacer_books_each_chunk_after_the_previous_one() -> None:
    clock = Clock()
    pacer = Pacer(1000.0, clock)
    assert pacer.reserve(100) == pytest.approx(0.1)  # the chunk itself must cross the wire
    assert pacer.reserve(100) == pytest.approx(0.2)  # queued behind the first
    clock.now += 0.2
    assert pacer.reserve(500) == pytest.approx(0.5)
    clock.now += 10  # idle time is not saved up as a burst
    assert pacer.reserve(1000) == pytest.approx(1.0)
    assert Pacer(1000.0).slice == 1024
    assert Pacer(1e9).slice == 64 * 1024
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_pacer_total_time_is_at_least_size_over_rate() -> None:
    clock = Clock()
    pacer = Pacer(4096.0, clock)
    waited = 0.0
    for _ in range(64):
        wait = pacer.reserve(pacer.slice)
        clock.now += wait  # the pump sleeps exactly this long
        waited += wait
    assert waited == pytest.approx(64 * 1024 / 4096.0)


# --- server time per route class, on the wire ------------------------------------------------


async def _timed(session: aiohttp.ClientSession, method: str, path: str, **kw: object) -> float:
    started = time.monotonic()
    status, _ = await call(session, method, path, **kw)
    assert status in (200, 201), (method, path, status)
    return time.monotonic() - started


async def test_server_time_by_route_class(emu: Emulator, admin: aiohttp.ClientSession) -> None:
    files = "/data/projects/DEMO/experiments/DEMO01_MR1/resources/OUT/files"
    assert await _timed(admin, "PUT", files + "/t.txt", data=b"x") < 2  # off by default
    emu.faults.configure("time:listing=0.3,time:put=0.4,time:file=30,time:zip=30")
    assert 0.3 <= await _timed(admin, "GET", "/data/projects", params={"format": "json"}) < 10
    assert 0.4 <= await _timed(admin, "PUT", files + "/u.txt", data=b"y") < 10
    emu.faults.configure("time:put=0,time:listing=0")
    assert await _timed(admin, "GET", "/data/projects", params={"format": "json"}) < 10
    assert [r.status for r in emu.requests.matching("*", "*/u.txt")] == [200]
