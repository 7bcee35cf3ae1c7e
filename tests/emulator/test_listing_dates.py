"""The dates a project's experiment and subject listings carry, and what moves them (xnat-api
§3.2, §3.3, §3.3.2, §10.4): what ``pull --changed-only`` reads.

XNAT writes them as `java.sql.Timestamp` text in server local time (`2023-09-27 17:31:21.352`,
no zone). A session's `insert_date` is fixed at creation and its `last_modified` starts equal to
it; saving the session's own item (a field, its label) moves `last_modified`; a file uploaded to
or removed from one of its resources is logged as a workflow on the session (`recent=`'s
`workflow_date` and `action_date`) and leaves the session's own dates where they were.
"""

from __future__ import annotations

import re

import aiohttp

from tests.emulator.emuhelp import call, envelope, rows

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{1,6}")
MR2 = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR2"
COLUMNS = "ID,label,insert_date,last_modified"


async def dates(admin: aiohttp.ClientSession, label: str) -> dict[str, str]:
    listing = await rows(admin, "/data/projects/DEMO/experiments", columns=COLUMNS)
    return next(r for r in listing if r["label"] == label)


async def test_listings_carry_both_dates_in_xnat_s_format(admin: aiohttp.ClientSession) -> None:
    for row in await rows(admin, "/data/projects/DEMO/experiments", columns=COLUMNS):
        assert STAMP.fullmatch(row["insert_date"]), row
        assert row["last_modified"] == row["insert_date"]  # never saved since it was created
    subjects = await rows(admin, "/data/projects/DEMO/subjects", columns=COLUMNS)
    assert subjects
    assert all(STAMP.fullmatch(r["insert_date"]) for r in subjects)
    assert {"ID", "label", "insert_date", "last_modified", "URI"} == set(subjects[0])


async def test_saving_the_session_moves_last_modified_only(admin: aiohttp.ClientSession) -> None:
    before = await dates(admin, "DEMO01_MR2")
    assert (await call(admin, "PUT", f"{MR2}?note=rescanned"))[0] == 200
    edited = await dates(admin, "DEMO01_MR2")
    assert edited["insert_date"] == before["insert_date"]
    assert edited["last_modified"] > before["last_modified"]
    assert (await call(admin, "PUT", f"{MR2}?label=DEMO01_MR2b"))[0] == 200
    relabelled = await dates(admin, "DEMO01_MR2b")
    assert relabelled["last_modified"] > edited["last_modified"]
    others = await dates(admin, "DEMO01_MR1")
    assert others["last_modified"] == others["insert_date"]


async def test_a_file_change_is_a_workflow_not_a_new_last_modified(
    admin: aiohttp.ClientSession,
) -> None:
    before = await dates(admin, "DEMO01_MR2")
    url = f"{MR2}/resources/NOTES/files/late.txt?inbody=true"
    assert (await call(admin, "PUT", url, data=b"late\n"))[0] == 200
    assert await dates(admin, "DEMO01_MR2") == before
    recent = await envelope(admin, "/data/experiments", recent="7", limit="500")
    row = next(r for r in recent["Result"] if r["label"] == "DEMO01_MR2")
    assert STAMP.fullmatch(row["workflow_date"])
    assert row["workflow_date"] > before["last_modified"]
    assert row["action_date"] == row["workflow_date"]
    untouched = next(r for r in recent["Result"] if r["label"] == "DEMO01_MR1")
    assert untouched["workflow_date"] == ""
    removed = f"{MR2}/resources/NOTES/files/late.txt"
    assert (await call(admin, "DELETE", removed))[0] == 200
    again = await envelope(admin, "/data/experiments", recent="7", limit="500")
    after = next(r for r in again["Result"] if r["label"] == "DEMO01_MR2")
    assert after["workflow_date"] > row["workflow_date"]
    assert await dates(admin, "DEMO01_MR2") == before
