"""Sharing subjects and experiments into other projects (xnat-api §1.4): the share and unshare
routes, listings under the project shared into, label addressing, permissions, persistence.

The demo seed's PRIV01_MR1 (project PRIV, which `user` cannot read) is shared into DEMO (where
`user` is a member), so every read `user` makes of it goes through the share.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp

from tests.emulator.emuhelp import rows
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig

PRIV_SUBJECT = "/data/projects/PRIV/subjects/PRIV01"
PRIV_SESSION = f"{PRIV_SUBJECT}/experiments/PRIV01_MR1"


async def status(session: aiohttp.ClientSession, method: str, path: str) -> tuple[int, str]:
    async with session.request(method, path) as response:
        return response.status, await response.text()


async def share_priv_into_demo(admin: aiohttp.ClientSession) -> None:
    assert await status(admin, "PUT", f"{PRIV_SUBJECT}/projects/DEMO?label=SHARED01") == (200, "")
    assert await status(admin, "PUT", f"{PRIV_SESSION}/projects/DEMO?label=SHARED_MR") == (200, "")


async def test_shared_records_list_under_the_project_with_its_labels(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    [primary] = await rows(admin, "/data/projects/PRIV/experiments")
    await share_priv_into_demo(admin)
    subjects = {r["label"]: r for r in await rows(user, "/data/projects/DEMO/subjects")}
    assert subjects["SHARED01"]["project"] == "DEMO"
    experiments = await rows(
        user, "/data/projects/DEMO/experiments", columns="ID,label,project,subject_label"
    )
    [shared] = [r for r in experiments if r["ID"] == primary["ID"]]
    assert (shared["label"], shared["project"], shared["subject_label"]) == (
        "SHARED_MR",
        "DEMO",
        "SHARED01",
    )
    assert shared["URI"] == f"/data/experiments/{primary['ID']}"  # the accession ID, unchanged
    # in its primary project it keeps its own labels
    [again] = await rows(admin, "/data/projects/PRIV/experiments", columns="label,subject_label")
    assert (again["label"], again["subject_label"]) == ("PRIV01_MR1", "PRIV01")
    # the site-wide listing filters `project=` on the primary project (xnat-api §3.3)
    site = await rows(admin, "/data/experiments", project="DEMO")
    assert primary["ID"] not in {r["ID"] for r in site}


async def test_a_member_of_the_shared_project_reads_the_data(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    [primary] = await rows(admin, "/data/projects/PRIV/experiments")
    assert (await status(user, "GET", f"/data/experiments/{primary['ID']}/files"))[0] == 404
    await share_priv_into_demo(admin)
    by_label = "/data/projects/DEMO/subjects/SHARED01/experiments/SHARED_MR/scans"
    assert len(await rows(user, by_label)) == len(await rows(admin, f"{PRIV_SESSION}/scans"))
    files = await rows(user, f"/data/experiments/{primary['ID']}/files", all="true")
    assert files
    async with user.get(files[0]["URI"]) as response:
        assert response.status == 200
        assert hashlib.md5(await response.read()).hexdigest() == files[0]["digest"]
    async with user.get(f"/data/experiments/{primary['ID']}?format=json") as response:
        item = (await response.json())["items"][0]
    [sharing] = [c for c in item["children"] if c["field"] == "sharing/share"]
    assert [i["data_fields"] for i in sharing["items"]] == [
        {"project": "DEMO", "label": "SHARED_MR"}
    ]
    # the primary project stays hidden from the user
    assert (await status(user, "GET", f"{PRIV_SESSION}/scans?format=json"))[0] == 404


async def test_share_refusals(admin: aiohttp.ClientSession, user: aiohttp.ClientSession) -> None:
    await share_priv_into_demo(admin)
    again, text = await status(admin, "PUT", f"{PRIV_SESSION}/projects/DEMO")
    assert (again, "Already assigned to project:DEMO" in text) == (409, True)
    other = "/data/projects/PUB/subjects/PUB01/experiments/PUB01_MR1/projects/DEMO"
    taken, text = await status(admin, "PUT", f"{other}?label=DEMO01_MR1")
    assert (taken, "Label already in use:DEMO01_MR1" in text) == (409, True)
    assert (await status(admin, "PUT", f"{PRIV_SESSION}/projects/NOWHERE"))[0] == 404
    assert (await status(admin, "PUT", f"{PRIV_SESSION}/projects/PUB?primary=true"))[0] == 400
    # `user` may read DEMO01_MR1 but not create in PUB
    into_pub = "/data/projects/DEMO/experiments/DEMO01_MR1/projects/PUB"
    assert (await status(user, "PUT", into_pub))[0] == 403
    assert "DEMO01_MR1" not in {
        r["label"] for r in await rows(admin, "/data/projects/PUB/experiments")
    }


async def test_shared_data_is_read_only_where_it_is_shared(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    pub = "/data/projects/PUB/subjects/PUB01/experiments/PUB01_MR1"
    assert await status(admin, "PUT", f"{pub}/projects/DEMO?label=PUB_IN_DEMO") == (200, "")
    through_demo = "/data/projects/DEMO/experiments/PUB_IN_DEMO/resources/NEW"
    assert (await status(user, "PUT", through_demo))[0] == 403  # PUB is not the user's to edit
    assert (await status(admin, "PUT", through_demo))[0] in (200, 201)


async def test_unshare_keeps_the_record_in_its_primary_project(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    [primary] = await rows(admin, "/data/projects/PRIV/experiments")
    await share_priv_into_demo(admin)
    # deleting through the project it is shared into only unshares
    assert (await status(user, "DELETE", "/data/projects/DEMO/experiments/SHARED_MR"))[0] == 200
    assert primary["ID"] not in {
        r["ID"] for r in await rows(user, "/data/projects/DEMO/experiments")
    }
    assert await rows(admin, "/data/projects/PRIV/experiments") == [primary]
    assert (await status(user, "GET", f"/data/experiments/{primary['ID']}/files"))[0] == 404
    # the explicit form, and its refusals
    assert (await status(admin, "DELETE", f"{PRIV_SUBJECT}/projects/DEMO"))[0] == 200
    assert "SHARED01" not in {r["label"] for r in await rows(admin, "/data/projects/DEMO/subjects")}
    assert (await status(admin, "DELETE", f"{PRIV_SUBJECT}/projects/DEMO"))[0] == 404
    assert (await status(admin, "DELETE", f"{PRIV_SUBJECT}/projects/PRIV"))[0] == 400
    # the label is free again in DEMO
    assert (await status(admin, "PUT", f"{PRIV_SESSION}/projects/DEMO?label=SHARED_MR"))[0] == 200


async def test_shares_survive_a_restart_and_go_with_their_records(tmp_path: Path) -> None:
    config = EmulatorConfig(root=tmp_path, seed="demo")
    async with (
        run_emulator(config) as emu,
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin,
    ):
        await share_priv_into_demo(admin)
    async with (
        run_emulator(config) as emu,
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin,
    ):
        labels = {r["label"] for r in await rows(admin, "/data/projects/DEMO/experiments")}
        assert "SHARED_MR" in labels
        assert (await status(admin, "DELETE", "/data/projects/PRIV"))[0] == 200
        labels = {r["label"] for r in await rows(admin, "/data/projects/DEMO/experiments")}
        assert "SHARED_MR" not in labels
        subjects = {r["label"] for r in await rows(admin, "/data/projects/DEMO/subjects")}
        assert "SHARED01" not in subjects


async def test_share_routes_answer_under_every_prefix(emu: Emulator) -> None:
    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin:
        for n, prefix in enumerate(("/data/archive", "/REST")):
            path = PRIV_SESSION.replace("/data", prefix, 1)
            assert (await status(admin, "PUT", f"{path}/projects/PUB?label=L{n}"))[0] == 200
            assert (await status(admin, "DELETE", f"{path}/projects/PUB"))[0] == 200
