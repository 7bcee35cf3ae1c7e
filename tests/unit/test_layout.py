"""layout: default and template placement, path safety, collisions, symlink-safe resolution."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import remote_file
from xnatsync.errors import UnsafePathError, UsageError
from xnatsync.layout import DEFAULT_LAYOUT, Reader, parse_layout, sanitize_type
from xnatsync.localfs import resolve_under
from xnatsync.model import Level, RemoteFile
from xnatsync.paths import safe_relpath


def rf(level: Level = Level.SCAN, path: str = "a/1.dcm", **kw: object) -> RemoteFile:
    fields: dict[str, object] = {
        "subject_id": "XNAT_S01", "subject": "sub1", "experiment_id": "XNAT_E01",
        "experiment": "sess1", "container": "7", "container_type": "T1 MPRAGE",
    }  # fmt: skip
    return remote_file(**{**fields, "level": level, "path": path, **kw})


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        (rf(), "P/sub1/sess1/scans/7-T1_MPRAGE/resources/DICOM/files/a/1.dcm"),
        (rf(Level.EXPERIMENT), "P/sub1/sess1/resources/DICOM/files/a/1.dcm"),
        (
            rf(Level.ASSESSOR, container="XNAT_E02_fs"),
            "P/sub1/sess1/assessors/XNAT_E02_fs/resources/DICOM/files/a/1.dcm",
        ),
        (
            rf(Level.RECONSTRUCTION, container="r1"),
            "P/sub1/sess1/reconstructions/r1/resources/DICOM/files/a/1.dcm",
        ),
        (
            rf(Level.SUBJECT, experiment="", experiment_id=""),
            "P/sub1/resources/DICOM/files/a/1.dcm",
        ),
        (rf(Level.PROJECT, subject="", subject_id=""), "P/resources/DICOM/files/a/1.dcm"),
        (rf(container_type=""), "P/sub1/sess1/scans/7/resources/DICOM/files/a/1.dcm"),
        (rf(container_type=" "), "P/sub1/sess1/scans/7/resources/DICOM/files/a/1.dcm"),
    ],
)
def test_default_layout_is_xnat_archive_shape(remote: RemoteFile, expected: str) -> None:
    assert DEFAULT_LAYOUT.relpath(remote) == PurePosixPath(expected)


def test_type_is_sanitised_like_xnat_zip_names() -> None:
    assert sanitize_type("T1 MPRAGE (sag)/3.0") == "T1_MPRAGE__sag__3_0"
    assert sanitize_type("dti-64") == "dti_64"
    assert sanitize_type("é") == "_"  # Java's \W is ASCII-only


UNSAFE_PATHS = [
    "../../x",
    "/etc/x",
    "C:\\x",
    "D:x",
    "\\\\host\\s\\x",
    "a/../../b",
    "a/./b",
    "a//b",
    "a/",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "x" * 256,
    "é" * 128,  # 256 bytes in UTF-8
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_unsafe_server_paths_are_refused_naming_the_file(path: str) -> None:
    remote = rf(path=path)
    with pytest.raises(UnsafePathError) as info:
        DEFAULT_LAYOUT.relpath(remote)
    assert remote.key.split("/")[0] in str(info.value)
    assert "sess1" not in str(info.value) or "XNAT_E01" in str(info.value)


@pytest.mark.parametrize(
    "labels",
    [
        {"subject": "../x"},
        {"subject": ".."},
        {"experiment": "a/b"},
        {"experiment": "a\\b"},
        {"project": "C:"},
        {"resource": "."},
        {"container": "x\x01"},
        {"experiment": ""},
        {"resource": ""},
        {"container": ""},
    ],
)
def test_unsafe_or_missing_server_labels_are_refused(labels: dict[str, str]) -> None:
    with pytest.raises(UnsafePathError):
        DEFAULT_LAYOUT.relpath(rf(Level.SCAN, "a/1.dcm", **labels))


def test_encoded_dots_are_plain_names() -> None:
    rel = DEFAULT_LAYOUT.relpath(rf(path="%2e%2e/x"))
    assert rel.parts[-2:] == ("%2e%2e", "x")


def test_name_of_255_bytes_is_allowed() -> None:
    assert DEFAULT_LAYOUT.relpath(rf(path="é" * 127 + "x")).name == "é" * 127 + "x"


def test_rendered_paths_are_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "café/é.dcm")
    rel = DEFAULT_LAYOUT.relpath(rf(path=nfd, subject=unicodedata.normalize("NFD", "zoë")))
    assert str(rel) == unicodedata.normalize("NFC", str(rel))
    assert rel.parts[1] == "zoë"
    assert rel.name == "é.dcm"


def test_per_level_template_and_collapsing_segments() -> None:
    layout = parse_layout(
        [
            "{project}/{subject}/{experiment}/{container}-{type}/{resource}/{path}",
            "assessor={project}/{experiment_id}/{level}/{container}/{resource}/{path}",
        ]
    )
    assert layout.relpath(rf()) == PurePosixPath("P/sub1/sess1/7-T1_MPRAGE/DICOM/a/1.dcm")
    session = layout.relpath(rf(Level.EXPERIMENT))
    assert session == PurePosixPath("P/sub1/sess1/DICOM/a/1.dcm")
    assessor = layout.relpath(rf(Level.ASSESSOR, container="A1"))
    assert assessor == PurePosixPath("P/XNAT_E01/assessor/A1/DICOM/a/1.dcm")
    project = layout.relpath(rf(Level.PROJECT, subject="", subject_id=""))
    assert project == PurePosixPath("P/DICOM/a/1.dcm")


def test_level_only_template_keeps_defaults_elsewhere() -> None:
    layout = parse_layout("scan={project}/{experiment}/{scan}/{resource}/{path}")
    assert layout.relpath(rf()) == PurePosixPath("P/sess1/7/DICOM/a/1.dcm")
    assert layout.relpath(rf(Level.EXPERIMENT)) == DEFAULT_LAYOUT.relpath(rf(Level.EXPERIMENT))
    assert "scan={project}/{experiment}/{scan}/{resource}/{path}" in layout.describe()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{project}/{subject}/{experiment}/{container}/{resource}/{nope}/{path}", "unknown"),
        ("{project}/{experiment}/{container}/{resource}/{path}/x", "end with"),
        ("{project}/{experiment}/{container}/{resource}/{path}-{path}", "end with"),
        ("{project}/{subject}/{container}/{resource}/{path}", "{experiment}"),
        ("{project}/{subject}/{experiment}/{resource}/{path}", "{container}"),
        ("{subject}/{experiment}/{container}/{resource}/{path}", "{project}"),
        ("{project}/{subject}/{experiment}/{container}/{path}", "{resource}"),
        ("/{project}/{subject}/{experiment}/{container}/{resource}/{path}", "relative"),
        ("{project}//{subject}/{experiment}/{container}/{resource}/{path}", "empty"),
        ("{project}/../{subject}/{experiment}/{container}/{resource}/{path}", "unsafe"),
        ("{project}/{subject}/{experiment}/{container:>5}/{resource}/{path}", "unknown"),
        ("{project}/{subject}/{experiment}/{container!r}/{resource}/{path}", "unknown"),
        ("{project}/{subject}/{experiment}/{}/{resource}/{path}", "unknown"),
        ("{project}/{subject}/{experiment}/{container/{resource}/{path}", "expected"),
        ("{project}/{subject}/{experiment}/a\\b{container}/{resource}/{path}", "backslash"),
        ("subject={project}/{resource}/{path}", "{subject}"),
        ("", "relative"),
    ],
)
def test_bad_templates_fail_at_parse_time(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_layout(spec)


def test_resolve_under_plain_path(tmp_path: Path) -> None:
    rel = PurePosixPath("P/s/e/x.dcm")
    assert resolve_under(tmp_path, rel) == tmp_path / "P" / "s" / "e" / "x.dcm"
    (tmp_path / "P" / "s").mkdir(parents=True)
    assert resolve_under(tmp_path, rel) == tmp_path / "P/s/e/x.dcm"


def test_resolve_under_refuses_symlinked_directory(tmp_path: Path) -> None:
    dest, elsewhere = tmp_path / "dest", tmp_path / "elsewhere"
    (dest / "P").mkdir(parents=True)
    elsewhere.mkdir()
    (dest / "P" / "sess").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symlink"):
        resolve_under(dest, PurePosixPath("P/sess/x.dcm"))


def test_resolve_under_refuses_dangling_link_at_final_name(tmp_path: Path) -> None:
    (tmp_path / "P").mkdir()
    (tmp_path / "P" / "x.dcm").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafePathError):
        resolve_under(tmp_path, PurePosixPath("P/x.dcm"))


def test_resolve_under_accepts_dest_that_is_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert resolve_under(tmp_path / "link", PurePosixPath("a")) == tmp_path / "link" / "a"


@pytest.mark.parametrize("rel", ["../x", "/abs", "a/../b"])
def test_resolve_under_refuses_escaping_relpaths(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UnsafePathError):
        resolve_under(tmp_path, PurePosixPath(rel))


TEXT = st.text(st.characters(codec="utf-8"), min_size=0, max_size=40)


@given(
    path=st.lists(st.one_of(TEXT, st.sampled_from(["..", ".", "", "C:", "\\\\h"])), max_size=5),
    subject=st.one_of(TEXT, st.just("..")),
    resource=TEXT,
)
def test_property_rendered_path_stays_under_dest(
    path: list[str], subject: str, resource: str
) -> None:
    remote = rf(path="/".join(path), subject=subject, resource=resource)
    try:
        rel = DEFAULT_LAYOUT.relpath(remote)
    except UnsafePathError:
        return
    assert not rel.is_absolute()
    assert all(p not in ("", ".", "..") and "\\" not in p and "\x00" not in p for p in rel.parts)
    root = "/dest"
    assert os.path.normpath(os.path.join(root, str(rel))).startswith(root + "/")
    assert str(rel) == unicodedata.normalize("NFC", str(rel))
    assert safe_relpath(str(rel), "again") == rel


def test_resolve_under_remembers_checked_folders_but_still_refuses_a_final_link(
    tmp_path: Path,
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    known: set[str] = set()
    assert resolve_under(tmp_path, PurePosixPath("a/b/f1"), known) == tmp_path / "a/b/f1"
    assert known == {"a", "a/b"}
    (tmp_path / "a" / "b" / "f2").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError, match="symlink"):
        resolve_under(tmp_path, PurePosixPath("a/b/f2"), known)


XNATPY_SCANS = "scan={experiment}/scans/{scan}-{type}/resources/{resource}/files/{path}"


def test_a_layout_without_project_is_for_one_project_only() -> None:
    with pytest.raises(UsageError, match=r"needs \{project\}"):
        parse_layout(XNATPY_SCANS)
    layout = parse_layout(XNATPY_SCANS, one_project=True)
    assert not layout.per_project
    assert str(layout.relpath(rf())) == "sess1/scans/7-T1_MPRAGE/resources/DICOM/files/a/1.dcm"
    assert parse_layout().per_project


# -- read back (push): a path written by a template gives back its level and labels ----------

ROUND_TRIP_LAYOUTS = [
    None,  # pull's default
    "{subject}/{experiment}/{level}-{container}/{resource}/{path}",
    "{experiment}_{subject}/{container}_{type}/{resource}/{path}",
    "scan={project}/{subject}/{experiment}/S{scan}_{type}/{resource}/{path}",
]
MEMBERS = (Level.SCAN, Level.ASSESSOR, Level.RECONSTRUCTION)
LABEL = st.text(alphabet="abcXYZ019-_", min_size=1, max_size=6).filter(
    lambda s: s.strip("-_. ") == s
)


@pytest.mark.parametrize("spec", ROUND_TRIP_LAYOUTS)
@given(
    level=st.sampled_from(list(Level)),
    subject=LABEL,
    experiment=LABEL,
    container=LABEL.filter(lambda s: "-" not in s and "_" not in s),
    kind=st.sampled_from(["", "T1w", "dwi_64"]),
    path=st.sampled_from(["a.txt", "sub/dir/b.dcm"]),
)
def test_what_a_layout_writes_reads_back(
    spec: str | None, level: Level, subject: str, experiment: str, container: str, kind: str,
    path: str,
) -> None:  # fmt: skip
    layout = parse_layout(spec, one_project=True) if spec else DEFAULT_LAYOUT
    has = {lv: lv not in (Level.PROJECT, Level.SUBJECT) for lv in Level}
    f = rf(
        level, path, subject=subject if level is not Level.PROJECT else "",
        subject_id="ID1" if level is not Level.PROJECT else "",
        experiment=experiment if has[level] else "", experiment_id="ID2" if has[level] else "",
        container=container if level in MEMBERS else "", container_type=kind,
    )  # fmt: skip
    found = Reader(layout).read(str(layout.relpath(f)))
    # read back as written, or found ambiguous (then push refuses it): never read wrongly
    assert level in [p.level for p in found]
    if len(found) > 1:
        assert spec == "{experiment}_{subject}/{container}_{type}/{resource}/{path}"
        return
    v = found[0].values
    assert (v.get("subject", ""), v.get("experiment", "")) == (f.subject, f.experiment)
    assert (v.get("scan") or v.get("container", ""), v["resource"], v["path"]) == (
        f.container, f.resource, path,
    )  # fmt: skip
    if level is Level.SCAN and "{type}" in layout.sources[level]:
        assert v.get("type", "") == kind


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("{project}/{subject_id}/{experiment}/{container}/{resource}/{path}", "subject_id"),
        ("{project}/{experiment_id}/{resource}/{path}", "experiment_id"),
        ("experiment={project}/{experiment}/{resource}/{path}", r"needs \{subject\}"),
        ("scan={project}/{subject}/{experiment}/{scan}/{type}/{resource}/{path}", "vanishes"),
    ],
)
def test_a_layout_push_cannot_read_back_is_refused(spec: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        Reader(parse_layout(spec))
