"""parse: statuses → typed errors, ResultSet → rows, listings → Experiment / RemoteFile."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xnatsync.errors import (
    AuthError,
    BadResponseError,
    NotFoundError,
    PermissionDeniedError,
    RemoteError,
    TransientRemoteError,
    TruncatedResponseError,
    XnatSyncError,
)
from xnatsync.model import Experiment, Level
from xnatsync.xnat import parse

SENTINEL = "s3ntinel-PASSWORD"
MD5_A = "0cc175b9c0f1b6a831c399e269772661"


# -- raise_for_status ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 301, 302])
def test_success_and_redirect_statuses_do_not_raise(status: int) -> None:
    # Status first: an HTML body on a 200 is not an error here (the caller's parser decides).
    parse.raise_for_status(status, {}, b"<html><h3>Login</h3></html>", "http://x/data/p")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (400, RemoteError),
        (405, RemoteError),
        (409, RemoteError),
        (408, TransientRemoteError),
        (429, TransientRemoteError),
        (500, TransientRemoteError),
        (502, TransientRemoteError),
        (503, TransientRemoteError),
        (504, TransientRemoteError),
    ],
)
def test_status_maps_to_typed_error(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        parse.raise_for_status(status, {}, b"", "http://x/data/projects")
    assert type(info.value) is error
    assert f"HTTP {status}" in str(info.value)


def test_404_and_transient_carry_status_and_url() -> None:
    with pytest.raises(NotFoundError) as info:
        parse.raise_for_status(404, {}, b"", "http://x/data/experiments/E9")
    assert info.value.status == 404
    assert info.value.url == "http://x/data/experiments/E9"


def test_html_status_page_gives_its_h3_in_the_message() -> None:
    body = b"<html>\n<head><title>Status page</title></head><body><h3>Already assigned</h3>"
    with pytest.raises(RemoteError, match="Already assigned"):
        parse.raise_for_status(409, {}, body, "http://x/data/p")


def test_messages_are_redacted() -> None:
    url = f"http://user:{SENTINEL}@x/data/p?password={SENTINEL}"
    body = f"JSESSIONID={SENTINEL} token={SENTINEL}".encode()
    for status in (400, 401, 403, 404, 500):
        with pytest.raises(XnatSyncError) as info:
            parse.raise_for_status(status, {}, body, url)
        assert SENTINEL not in str(info.value)
        assert SENTINEL not in getattr(info.value, "url", "")


def test_long_bodies_are_truncated_in_messages() -> None:
    with pytest.raises(RemoteError) as info:
        parse.raise_for_status(400, {}, b"x" * 10_000, "http://x/")
    assert len(str(info.value)) < parse.SNIPPET_CHARS + 100


def test_retry_after_seconds() -> None:
    with pytest.raises(TransientRemoteError) as info:
        parse.raise_for_status(429, {"Retry-After": "7"}, b"", "http://x/")
    assert info.value.retry_after == 7.0


def test_retry_after_http_date_measured_against_date_header() -> None:
    server_now = datetime(2024, 6, 19, 12, 0, 0, tzinfo=UTC)
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=30), usegmt=True),
    }
    with pytest.raises(TransientRemoteError) as info:
        # Our own clock is a day off: the server's Date header wins.
        parse.raise_for_status(503, headers, b"", "http://x/", now=server_now.timestamp() + 86400)
    assert info.value.retry_after == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("value", "date", "now", "expected"),
    [
        (None, None, None, None),
        ("", None, None, None),
        ("  12 ", None, None, 12.0),
        ("1.5", None, None, 1.5),
        ("-5", None, None, 0.0),
        ("inf", None, None, None),
        ("nan", None, None, None),
        ("soon", None, 0.0, None),
        ("Wed, 19 Jun 2024 12:00:10 GMT", None, None, None),  # no reference time at all
        ("Wed, 19 Jun 2024 12:00:10 GMT", None, 1718798400.0, 10.0),
        ("Wed, 19 Jun 2024 11:00:00 GMT", "Wed, 19 Jun 2024 12:00:00 GMT", None, 0.0),
    ],
)
def test_parse_retry_after(
    value: str | None, date: str | None, now: float | None, expected: float | None
) -> None:
    assert parse.parse_retry_after(value, date=date, now=now) == expected


# -- parse_result_set ---------------------------------------------------------------------------


def test_result_set_tolerates_envelope_keys_and_missing_total() -> None:
    body = json.dumps(
        {
            "ResultSet": {
                "Columns": [{"key": "URI", "serverRoot": ""}],
                "title": "Files",
                "xdat_user_id": "1",
                "Result": [{"Name": "a", "Size": "1"}],
            }
        }
    ).encode()
    assert parse.parse_result_set(body) == [{"Name": "a", "Size": "1"}]


def test_result_set_stringifies_values() -> None:
    body = json.dumps(
        {
            "ResultSet": {
                "Result": [{"n": 5, "f": 1.5, "t": True, "no": False, "z": None, "l": [1]}],
                "totalRecords": 1,
            }
        }
    ).encode()
    row = parse.parse_result_set(body)[0]
    assert row == {"n": "5", "f": "1.5", "t": "true", "no": "false", "z": "", "l": "[1]"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"ResultSet":{"Result":[{"ID":"a"},',  # truncated
        b"<html><body><h3>Login</h3></body></html>",  # a login page on a 200
        b"",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"ResultSet": []}',
        b'{"ResultSet": {"totalRecords": "0"}}',
        b'{"ResultSet": {"Result": {"ID": "a"}}}',
        b'{"ResultSet": {"Result": ["a"]}}',
        b'{"items": []}',
    ],
)
def test_result_set_rejects_anything_else(body: bytes) -> None:
    with pytest.raises(BadResponseError):
        parse.parse_result_set(body, url="http://x/data/projects")


_cells = st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=6)


@given(st.lists(_cells, max_size=5), st.dictionaries(st.text(max_size=6), st.text(), max_size=3))
def test_result_set_round_trip(rows: list[dict[str, str]], extra: dict[str, str]) -> None:
    envelope: dict[str, object] = {k: v for k, v in extra.items() if k != "Result"}
    envelope["Result"] = rows
    assert parse.parse_result_set(json.dumps({"ResultSet": envelope}).encode()) == rows


# -- experiments --------------------------------------------------------------------------------


def test_experiments_from_rows() -> None:
    rows = [
        {
            "ID": "XNAT_E1",
            "label": "MR1",
            "project": "P",
            "subject_ID": "XNAT_S1",
            "subject_label": "sub01",
            "xsiType": "xnat:mrSessionData",
            "date": "2023-02-19",
            "insert_date": "2023-09-27 17:31:21.352",
            "last_modified": "2023-09-28 10:00:00.0",
            "URI": "/data/experiments/XNAT_E1",
            "xnat:subjectassessordata/id": "XNAT_E1",
        },
        {"ID": "XNAT_E2", "xsiType": "xnat:ctSessionData"},
    ]
    first, second = parse.experiments_from_rows("P", rows)
    assert first == Experiment(
        id="XNAT_E1",
        label="MR1",
        project="P",
        subject_id="XNAT_S1",
        subject_label="sub01",
        xsi_type="xnat:mrSessionData",
        date="2023-02-19",
        insert_date="2023-09-27 17:31:21.352",
        last_modified="2023-09-28 10:00:00.0",
    )
    assert (second.label, second.project, second.subject_id) == ("XNAT_E2", "P", "")


def test_experiment_columns_in_other_case_are_found() -> None:
    (exp,) = parse.experiments_from_rows("P", [{"id": "E", "SUBJECT_LABEL": "s"}])
    assert (exp.id, exp.subject_label) == ("E", "s")


def test_experiment_row_without_id_is_bad() -> None:
    with pytest.raises(BadResponseError):
        parse.experiments_from_rows("P", [{"label": "x"}])


# -- files --------------------------------------------------------------------------------------

EXP = Experiment(
    id="XNAT_E1",
    label="MR1",
    project="P",
    subject_id="XNAT_S1",
    subject_label="sub01",
    xsi_type="xnat:mrSessionData",
)


def _res(rid: str, label: str, category: str, cat_id: str, cat_desc: str) -> dict[str, str]:
    return {
        "xnat_abstractresource_id": rid,
        "label": label,
        "element_name": "xnat:resourceCatalog",
        "category": category,
        "cat_id": cat_id,
        "cat_desc": cat_desc,
        "file_count": "",
        "file_size": "",
        "tags": "",
        "content": "",
        "format": "",
    }


def _file(uri: str, cat_id: str, size: str = "1", digest: str = MD5_A) -> dict[str, str]:
    name = unquote(uri.rsplit("/", 1)[-1])
    return {
        "Name": name,
        "Size": size,
        "URI": uri,
        "collection": "",
        "file_tags": "",
        "file_format": "",
        "file_content": "",
        "cat_ID": cat_id,
        "digest": digest,
    }


RESOURCES = [
    _res("101", "DICOM", "scans", "1", "T1w"),
    _res("102", "QC", "resources", "XNAT_E1", " "),
    _res("103", "DATA", "assessors", "XNAT_E1_QC", "xnat:qcAssessmentData"),
    _res("104", "NIFTI", "reconstructions", "R1", ""),
]


def test_files_join_resources_by_cat_id() -> None:
    files = [
        _file("/data/experiments/XNAT_E1/scans/1/resources/101/files/1.dcm", "101"),
        _file("/data/experiments/XNAT_E1/resources/102/files/report.pdf", "102"),
        _file(
            "/data/experiments/XNAT_E1/assessors/XNAT_E1_QC/out/resources/103/files/qc.xml", "103"
        ),
        _file("/data/experiments/XNAT_E1/reconstructions/R1/out/resources/104/files/a.nii", "104"),
    ]
    scan, session, assessor, recon = parse.files_from_listing("P", EXP, RESOURCES, files)
    assert (scan.level, scan.container, scan.container_type, scan.resource) == (
        Level.SCAN,
        "1",
        "T1w",
        "DICOM",
    )
    assert (session.level, session.container, session.container_type, session.resource) == (
        Level.EXPERIMENT,
        "",
        "",
        "QC",
    )
    assert (assessor.level, assessor.container, assessor.container_type) == (
        Level.ASSESSOR,
        "XNAT_E1_QC",
        "xnat:qcAssessmentData",
    )
    assert (recon.level, recon.container, recon.resource) == (Level.RECONSTRUCTION, "R1", "NIFTI")
    for f in (scan, session, assessor, recon):
        assert (f.project, f.subject_id, f.subject, f.experiment_id, f.experiment) == (
            "P",
            "XNAT_S1",
            "sub01",
            "XNAT_E1",
            "MR1",
        )
        assert (f.size, f.digest) == (1, MD5_A)
    assert scan.path == "1.dcm"
    assert scan.uri == "/data/experiments/XNAT_E1/scans/1/resources/101/files/1.dcm"
    assert len({f.key for f in (scan, session, assessor, recon)}) == 4


def test_file_paths_are_decoded_and_uris_re_encoded() -> None:
    row = _file(
        "/data/experiments/XNAT_E1/scans/1/resources/101/files/sub%20dir/a%20b+c.dcm", "101"
    )
    (f,) = parse.files_from_listing("P", EXP, RESOURCES, [row])
    assert f.path == "sub dir/a b+c.dcm"
    assert f.uri == "/data/experiments/XNAT_E1/scans/1/resources/101/files/sub%20dir/a%20b%2Bc.dcm"


def test_raw_spaces_in_listed_uris_are_encoded() -> None:
    row = _file("/data/experiments/XNAT_E1/resources/102/files/my file.txt", "102")
    (f,) = parse.files_from_listing("P", EXP, RESOURCES, [row])
    assert (f.path, f.uri) == (
        "my file.txt",
        "/data/experiments/XNAT_E1/resources/102/files/my%20file.txt",
    )


def test_a_name_containing_percent_is_not_decoded_when_name_says_so() -> None:
    row = _file("/data/experiments/XNAT_E1/resources/102/files/100%25done", "102")
    row["Name"] = "100%25done"
    (f,) = parse.files_from_listing("P", EXP, RESOURCES, [row])
    assert f.path == "100%25done"
    assert f.uri.endswith("/files/100%2525done")


def test_missing_resource_row_falls_back_to_uri_shape() -> None:
    files = [
        _file("/REST/experiments/XNAT_E1/scans/7/resources/999/files/x.dcm", "999"),
        _file("/data/archive/experiments/XNAT_E1/assessors/A9/resources/998/files/y", "998"),
        _file("/data/experiments/XNAT_E1/resources/997/files/z", ""),
    ]
    files[0]["collection"] = "SECONDARY"
    scan, assessor, session = parse.files_from_listing("P", EXP, [], files)
    assert (scan.level, scan.container, scan.resource) == (Level.SCAN, "7", "SECONDARY")
    assert scan.uri == "/data/experiments/XNAT_E1/scans/7/resources/999/files/x.dcm"
    assert (assessor.level, assessor.container, assessor.resource) == (Level.ASSESSOR, "A9", "998")
    assert (session.level, session.container) == (Level.EXPERIMENT, "")


def test_unlabelled_resource_uses_collection_then_id() -> None:
    resources = [_res("105", "", "resources", "", "")]
    row = _file("/data/experiments/XNAT_E1/resources/105/files/a", "105")
    (f,) = parse.files_from_listing("P", EXP, resources, [row])
    assert f.resource == "105"


@pytest.mark.parametrize(
    ("size", "digest", "expected_size", "expected_digest"),
    [
        ("123", MD5_A, 123, MD5_A),
        ("123", MD5_A.upper(), 123, MD5_A),
        ("123", "", 123, None),
        ("123", "not-an-md5", 123, None),
        ("0", parse.EMPTY_MD5, 0, parse.EMPTY_MD5),
        ("0", MD5_A, None, MD5_A),  # XNAT's Size-0 quirk: a digest of non-empty content
        ("0", "", None, None),  # unknown: cannot tell the quirk from an empty file
        ("", MD5_A, None, MD5_A),
        ("-4", "", None, None),
        ("12kB", "", None, None),
    ],
)
def test_size_and_digest_decisions(
    size: str, digest: str, expected_size: int | None, expected_digest: str | None
) -> None:
    row = _file("/data/experiments/XNAT_E1/resources/102/files/a", "102", size, digest)
    (f,) = parse.files_from_listing("P", EXP, RESOURCES, [row])
    assert (f.size, f.digest) == (expected_size, expected_digest)


def test_file_row_with_unusable_uri_is_bad() -> None:
    with pytest.raises(BadResponseError):
        parse.files_from_listing("P", EXP, RESOURCES, [_file("/data/experiments/E/x", "102")])


def test_traversal_paths_are_kept_for_the_layout_stage_to_reject() -> None:
    row = _file("/data/experiments/XNAT_E1/resources/102/files/a/../../etc/passwd", "102")
    (f,) = parse.files_from_listing("P", EXP, RESOURCES, [row])
    assert f.path == "a/../../etc/passwd"


def test_project_level_files() -> None:
    resources = [_res("201", "protocols", "resources", "", "")]
    files = [
        _file("/data/projects/P/resources/201/files/doc/readme.txt", "201"),
        _file("/data/projects/P/subjects/XNAT_S2/resources/202/files/s.txt", "202"),
    ]
    own, stray = parse.project_files_from_listing("P", resources, files)
    assert (own.level, own.owner, own.container, own.resource, own.path) == (
        Level.PROJECT,
        "",
        "",
        "protocols",
        "doc/readme.txt",
    )
    assert own.key == "P//project//protocols/doc/readme.txt"
    assert (stray.level, stray.subject_id, stray.subject) == (Level.SUBJECT, "XNAT_S2", "XNAT_S2")


def test_subject_level_files() -> None:
    resources = [_res("301", "consent", "resources", "", "")]
    files = [_file("/data/projects/P/subjects/XNAT_S1/resources/301/files/c.pdf", "301")]
    (f,) = parse.subject_files_from_listing("P", "XNAT_S1", "sub01", resources, files)
    assert (f.level, f.subject_id, f.subject, f.experiment_id, f.resource) == (
        Level.SUBJECT,
        "XNAT_S1",
        "sub01",
        "",
        "consent",
    )
    assert f.owner == "XNAT_S1"


def test_a_cut_json_listing_is_retryable_an_html_page_is_not() -> None:
    with pytest.raises(TruncatedResponseError) as cut:
        parse.parse_result_set(b'{"ResultSet":{"Result":[{"ID":"E1"},{"I')
    assert cut.value.retryable
    with pytest.raises(BadResponseError) as page:
        parse.parse_result_set(b"<html><body>Login</body></html>")
    assert not page.value.retryable
