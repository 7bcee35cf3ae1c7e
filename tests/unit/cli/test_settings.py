"""Settings at the edge: TOML files, rates, ID lists, credentials, URLs, selection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from xnatsync.cli.credentials import resolve_login
from xnatsync.cli.pull import expand_ids, selection_from
from xnatsync.cli.settings import load_settings, parse_rate
from xnatsync.errors import UsageError
from xnatsync.layout import parse_layout
from xnatsync.model import Experiment, Level, RemoteFile
from xnatsync.pull.options import PullOptions
from xnatsync.pull.selection import Selection
from xnatsync.xnat.auth import Credentials

CONFIGS = Path(__file__).parents[3] / "configs"


@pytest.mark.parametrize("name", ["nightly-mirror.toml", "cohort-download.toml"])
def test_shipped_example_configs_load(name: str) -> None:
    settings = load_settings(str(CONFIGS / name), "pull")
    assert settings["url"] == "https://xnat.example.org"
    assert isinstance(settings["project"], list)


def test_command_table_overrides_top_level_and_dashes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('dest = "/a"\n[pull]\ndest = "/b"\nmax-delete = 5\n[watch]\ndest = "/c"\n')
    assert load_settings(str(path), "pull") == {"dest": "/b", "max_delete": 5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pull]\nconcurency = 4\n", "unknown setting 'concurency'"),
        ("[pull]\nconcurrency = '4'\n", "wrong type"),
        ("[pull]\nconcurrency = true\n", "wrong type"),
        ("[pull]\nproject = 'P'\n", "list of strings"),
        ("[pull\n", "not valid TOML"),
    ],
)
def test_bad_settings_files_fail_loudly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_settings(str(path), "pull")


def test_missing_settings_file() -> None:
    with pytest.raises(UsageError, match="cannot read config"):
        load_settings("/nonexistent/x.toml", "pull")


@pytest.mark.parametrize(
    ("text", "rate"), [("500", 500.0), ("10K", 10240.0), ("2M", 2097152.0), ("1.5g", 1.5 * 2**30)]
)
def test_rates(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "0", "-3M", ""])
def test_bad_rates(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_ids_from_lists_and_csv_columns(tmp_path: Path) -> None:
    (tmp_path / "ids.txt").write_text("# cohort\nE1\n\n E2 \n")
    (tmp_path / "ids.csv").write_text("session_label,age\nS1,30\nS2,41\n,50\n")
    values = ["X", f"@{tmp_path}/ids.txt", f"@{tmp_path}/ids.csv:session_label"]
    assert expand_ids(values) == ["X", "E1", "E2", "S1", "S2"]
    with pytest.raises(UsageError, match="no column 'label'"):
        expand_ids([f"@{tmp_path}/ids.csv:label"])
    with pytest.raises(UsageError, match="cannot read"):
        expand_ids(["@/nonexistent.txt"])


def test_selection_from_settings() -> None:
    sel = selection_from({"since": "2024-03-01", "scan_type": ["T1*"], "no_assessors": True})
    assert sel.since == dt.date(2024, 3, 1)
    assert sel.scan_types == ("T1*",)
    assert not sel.assessors
    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        selection_from({"since": "03/01/2024"})


def experiment(**kw: str) -> Experiment:
    base = {"id": "E1", "label": "s1_mr", "project": "P", "subject_id": "S1"}
    base |= {"subject_label": "s1", "xsi_type": "xnat:mrSessionData"}
    return Experiment(**(base | kw))


def test_selection_matches_labels_or_ids_and_server_dates() -> None:
    assert Selection(experiments=frozenset({"E1"})).wants_experiment(experiment())
    assert Selection(subjects=frozenset({"s1"})).wants_experiment(experiment())
    assert not Selection(subjects=frozenset({"s2"})).wants_experiment(experiment())
    assert Selection(xsi_types=frozenset({"XNAT:MRSESSIONDATA"})).wants_experiment(experiment())
    since = Selection(since=dt.date(2024, 1, 1))
    assert since.wants_experiment(experiment(last_modified="2024-01-01 00:00:00.0"))
    assert not since.wants_experiment(experiment(insert_date="2023-12-31 23:59:59.9"))


def scan_file(scan_type: str, level: Level = Level.SCAN) -> RemoteFile:
    return RemoteFile("P", "S1", "s1", "E1", "e1", level, "1", scan_type, "DICOM", "a.dcm",
                      "/data/x", 1, None)  # fmt: skip


def test_selection_of_files_by_scan_type_glob_and_level() -> None:
    sel = Selection(scan_types=("t1*",))
    assert sel.wants_file(scan_file("T1w_MPRAGE"))
    assert not sel.wants_file(scan_file("T2w"))
    assert not sel.wants_file(scan_file("", Level.EXPERIMENT))
    assert not Selection(assessors=False).wants_file(scan_file("", Level.ASSESSOR))
    assert not Selection(resources=frozenset({"NIFTI"})).wants_file(scan_file("T1w"))


def test_credentials_order(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine xnat.example.org login nu password np\n")
    netrc.chmod(0o600)
    url = "https://xnat.example.org"
    env = {"XNATSYNC_USER": "eu", "XNATSYNC_PASSWORD": "ep", "TOK": "alias:secret"}
    assert resolve_login(url, user=None, token_env="TOK", env=env).username == "alias"
    assert resolve_login(url, user=None, token_env=None, env=env).password == "ep"
    assert (
        resolve_login(url, user=None, token_env=None, env={}, netrc_path=str(netrc)).username
        == "nu"
    )
    prompted = resolve_login(url, user="me", token_env=None, env={}, prompt=lambda _: "typed")
    assert (prompted.username, prompted.password) == ("me", "typed")
    with pytest.raises(UsageError, match="XNATSYNC_USER"):
        resolve_login(url, user=None, token_env=None, env={}, netrc_path=str(tmp_path / "none"))
    with pytest.raises(UsageError, match="alias:secret"):
        resolve_login(url, user=None, token_env="TOK", env={"TOK": "nocolon"})


def test_credentials_never_show_the_password() -> None:
    login = resolve_login("http://h", user="u", token_env=None, env={"XNATSYNC_PASSWORD": "s3nt"})
    assert "s3nt" not in repr(login)
    assert "s3nt" not in str(login)


def test_pull_options_refuse_a_projectless_layout_for_several_projects() -> None:
    layout = parse_layout("scan={experiment}/{scan}/{resource}/{path}", one_project=True)
    PullOptions("http://h", ("A",), Path("d"), Credentials("u", "p"), layout=layout)
    with pytest.raises(UsageError, match="one project"):
        PullOptions("http://h", ("A", "B"), Path("d"), Credentials("u", "p"), layout=layout)
