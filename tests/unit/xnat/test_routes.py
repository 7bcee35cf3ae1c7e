"""routes: paths and params are values; encoding keeps XNAT's %20/%2B decoding quirk safe."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xnatsync.errors import UsageError
from xnatsync.xnat import routes


def test_every_listing_asks_for_json() -> None:
    for route in (
        routes.projects(),
        routes.subjects("P"),
        routes.experiments("P"),
        routes.experiment_resources("E1"),
        routes.experiment_files("E1"),
        routes.project_resources("P"),
        routes.project_files("P"),
        routes.subject_resources("P", "S1"),
        routes.subject_files("P", "S1"),
    ):
        assert route.params["format"] == "json"
        assert route.path.startswith("/data/")


def test_experiment_listing_columns() -> None:
    route = routes.experiments("My Project")
    assert route.path == "/data/projects/My%20Project/experiments"
    assert route.params["columns"] == (
        "ID,label,project,subject_ID,subject_label,xsiType,date,insert_date,last_modified"
    )


def test_session_inventory_routes_use_all_true() -> None:
    assert routes.experiment_resources("XNAT_E00001") == routes.Route(
        "/data/experiments/XNAT_E00001/resources", {"format": "json", "all": "true"}
    )
    assert routes.experiment_files("XNAT_E00001") == routes.Route(
        "/data/experiments/XNAT_E00001/files", {"format": "json", "all": "true"}
    )


def test_subject_routes() -> None:
    assert routes.subject_files("P", "XNAT_S1").path == "/data/projects/P/subjects/XNAT_S1/files"
    assert routes.project_resources("P").path == "/data/projects/P/resources"


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("a/b", "a%2Fb"),
        ("a?b#c%d", "a%3Fb%23c%25d"),
        ("x(1),y", "x(1),y"),
        ("é", "%C3%A9"),
    ],
)
def test_segment_encoding(raw: str, encoded: str) -> None:
    assert routes.segment(raw) == encoded


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_segment_refuses_shape_changing_values(bad: str) -> None:
    with pytest.raises(ValueError, match="segment"):
        routes.segment(bad)


def test_file_uri_keeps_separators_and_avoids_plus() -> None:
    uri = routes.file_uri("/data/experiments/E1/resources/101", "sub dir/a+b c.dcm")
    assert uri == "/data/experiments/E1/resources/101/files/sub%20dir/a%2Bb%20c.dcm"


@pytest.mark.parametrize("bad", ["", "/abs", "a//b", "a/../b", "./a", "a/"])
def test_file_path_refuses_non_relative_paths(bad: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        routes.file_path(bad)


_segment_text = st.text(min_size=1, max_size=12).filter(
    lambda s: "/" not in s and s not in (".", "..")
)


@given(st.lists(_segment_text, min_size=1, max_size=4))
def test_file_path_round_trips_and_never_sends_plus_or_space(parts: list[str]) -> None:
    path = "/".join(parts)
    encoded = routes.file_path(path)
    assert unquote(encoded) == path
    assert encoded.count("/") == path.count("/")
    assert "+" not in encoded
    assert " " not in encoded
    assert encoded.isascii()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("xnat.example.org", "not an XNAT URL"),
        ("ftp://h", "not an XNAT URL"),
        ("https://u:p@h", "not the URL"),
        ("https://h/?a=1", "query"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        routes.check_base_url(url)


def test_url_keeps_a_context_path() -> None:
    assert routes.check_base_url("https://h:8443/xnat/") == "https://h:8443/xnat"
