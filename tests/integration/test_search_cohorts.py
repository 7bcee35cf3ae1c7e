"""Cohorts from XNAT searches (issue 11): ``--search ID`` and ``--search-xml FILE`` select the
experiments the server's query returns, intersected with the other selection flags; bad
searches are clear errors that leave the destination untouched."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import make_config, run_pull, server_request
from xnatsync.emulator.server import Emulator
from xnatsync.events import PlanShown
from xnatsync.pull.selection import Selection
from xnatsync.xnat.search import SearchError, SearchSource, read_document

MR1_SEARCH = b"""<?xml version="1.0" encoding="UTF-8"?>
<xdat:bundle ID="@xnat:mrSessionData" brief-description="first MR sessions"
    xmlns:xdat="http://nrg.wustl.edu/security"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <xdat:root_element_name>xnat:mrSessionData</xdat:root_element_name>
  <xdat:search_field>
    <xdat:element_name>xnat:mrSessionData</xdat:element_name>
    <xdat:field_ID>LABEL</xdat:field_ID><xdat:sequence>0</xdat:sequence>
    <xdat:type>string</xdat:type><xdat:header>Label</xdat:header>
  </xdat:search_field>
  <xdat:search_where method="AND">
    <xdat:criteria override_value_formatting="0">
      <xdat:schema_field>xnat:mrSessionData/LABEL</xdat:schema_field>
      <xdat:comparison_type> LIKE </xdat:comparison_type>
      <xdat:value>%_MR1</xdat:value>
    </xdat:criteria>
  </xdat:search_where>
</xdat:bundle>
"""
SUBJECTS = MR1_SEARCH.replace(b"xnat:mrSessionData", b"xnat:subjectData")


def sessions_on_disk(dest: Path) -> set[str]:
    """Session folders (DEMO/<subject>/<session>), not the project's resources."""
    return {p.name for p in dest.glob("DEMO/*/*") if p.is_dir() and p.parent.name != "resources"}


async def test_a_stored_search_selects_its_experiments(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path, searches=(SearchSource(search_id="DEMO_MR"),))
    summary, _ = await run_pull(config)
    assert summary.ok
    assert sessions_on_disk(tmp_path) == {"DEMO01_MR1", "DEMO01_MR2", "DEMO02_MR1"}
    assert emu.requests.count("GET", "/data/search/saved/DEMO_MR") == 1


async def test_searches_intersect_with_each_other_and_the_other_flags(
    emu: Emulator, tmp_path: Path
) -> None:
    document = read_document(MR1_SEARCH, "--search-xml mr1.xml")
    searches = (SearchSource(search_id="DEMO_MR"), SearchSource(document=document))
    config = make_config(emu, tmp_path, searches=searches)
    assert (await run_pull(config))[0].ok
    assert sessions_on_disk(tmp_path) == {"DEMO01_MR1", "DEMO02_MR1"}
    narrower = replace(
        config, dest=tmp_path / "b", selection=Selection(subjects=frozenset({"DEMO02"}))
    )
    assert (await run_pull(narrower))[0].ok
    assert sessions_on_disk(tmp_path / "b") == {"DEMO02_MR1"}


async def test_an_unknown_stored_search_is_a_clear_error(emu: Emulator, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    config = make_config(emu, dest, searches=(SearchSource(search_id="NO_SUCH"),))
    with pytest.raises(SearchError, match="no stored search 'NO_SUCH'") as caught:
        await run_pull(config)
    assert caught.value.exit_code == 2
    assert not dest.exists()  # refused before the destination was touched


async def test_a_stored_search_of_subjects_is_refused(emu: Emulator, tmp_path: Path) -> None:
    put = "/data/search/saved/SUBJECTS?inbody=true"
    assert await server_request(emu, "PUT", put, SUBJECTS.replace(b"@xnat", b"SUBJECTS")) == 200
    dest = tmp_path / "mirror"
    config = make_config(emu, dest, searches=(SearchSource(search_id="SUBJECTS"),))
    with pytest.raises(SearchError, match="searches xnat:subjectData, not experiments"):
        await run_pull(config)
    assert not dest.exists()
    assert emu.requests.count("POST", "/data/search") == 0


async def test_a_dry_run_plans_only_the_searched_experiments(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(
        emu, tmp_path / "none", dry_run=True, searches=(SearchSource(search_id="DEMO_CT"),)
    )
    _, events = await run_pull(config)
    sessions = {f"DEMO/{label}" for label in ("DEMO01_MR1", "DEMO01_MR2", "DEMO02_MR1")}
    sessions.add("DEMO/DEMO03_CT1")
    planned = {e.title for e in events.of(PlanShown)}
    assert planned & sessions == {"DEMO/DEMO03_CT1"}
    assert not (tmp_path / "none").exists()
