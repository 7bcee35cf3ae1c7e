"""The command line of issue 11's pull options: --changed-only/--full-every and the searches,
checked at the edge (a bad search document is refused before any request: no client exists
yet when ``options_from`` raises)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xnatsync.cli.pull import DEFAULTS, options_from
from xnatsync.cli.settings import load_settings
from xnatsync.errors import UsageError
from xnatsync.pull.changes import DAY, ChangedOnly

BUNDLE = """<xdat:bundle ID="@{root}" xmlns:xdat="http://nrg.wustl.edu/security">
  <xdat:root_element_name>{root}</xdat:root_element_name>
</xdat:bundle>"""
ENV = {"XNATSYNC_USER": "u", "XNATSYNC_PASSWORD": "p"}


def options(**given: Any) -> Any:
    settings = {**DEFAULTS, "url": "https://xnat.example.org", "project": ["P"], **given}
    return options_from(settings, prompt=None, env=ENV)


def test_changed_only_and_its_period() -> None:
    assert options().changed_only is None
    assert options(changed_only=True).changed_only == ChangedOnly(full_every=7 * DAY)
    assert options(changed_only=True, full_every=1.5).changed_only == ChangedOnly(1.5 * DAY)
    with pytest.raises(UsageError, match="--full-every applies only with --changed-only"):
        options(full_every=3)
    with pytest.raises(UsageError, match="--full-every must be 0 or more"):
        options(changed_only=True, full_every=-1)


def test_search_documents_are_read_and_checked_at_the_edge(tmp_path: Path) -> None:
    good = tmp_path / "mr.xml"
    good.write_text(BUNDLE.format(root="xnat:mrSessionData"))
    chosen = options(search=["DEMO_MR"], search_xml=[str(good)]).searches
    assert chosen[0].search_id == "DEMO_MR"
    assert chosen[1].document is not None
    assert chosen[1].document.root == "xnat:mrSessionData"
    broken = tmp_path / "broken.xml"
    broken.write_text("<xdat:bundle><unclosed></xdat:bundle>")
    with pytest.raises(UsageError, match=r"--search-xml .*broken.xml: not well-formed XML"):
        options(search_xml=[str(broken)])
    subjects = tmp_path / "subjects.xml"
    subjects.write_text(BUNDLE.format(root="xnat:subjectData"))
    with pytest.raises(UsageError, match="searches xnat:subjectData, not experiments"):
        options(search_xml=[str(subjects)])
    scans = tmp_path / "scans.xml"
    scans.write_text(BUNDLE.format(root="xnat:mrScanData"))
    with pytest.raises(UsageError, match="not experiments"):
        options(search_xml=[str(scans)])
    other = tmp_path / "other.xml"
    other.write_text("<project><name>x</name></project>")
    with pytest.raises(UsageError, match="not an XNAT search document"):
        options(search_xml=[str(other)])
    with pytest.raises(UsageError, match=r"missing\.xml"):
        options(search_xml=[str(tmp_path / "missing.xml")])


def test_a_config_file_names_them_too(tmp_path: Path) -> None:
    config = tmp_path / "nightly.toml"
    config.write_text('[pull]\nchanged_only = true\nfull_every = 2\nsearch = "DEMO_MR"\n')
    settings = load_settings(str(config), "pull")
    assert settings == {"changed_only": True, "full_every": 2, "search": "DEMO_MR"}
    chosen = options(**settings)
    assert chosen.changed_only == ChangedOnly(2 * DAY)
    assert [s.search_id for s in chosen.searches] == ["DEMO_MR"]
