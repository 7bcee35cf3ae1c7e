"""`GET /data/projects?permissions=ACTION&dataType=TYPE` (XNAT's permissions handler, used by
uploaders to learn where a user may add data): rows `id`, `secondary_id`; collaborators read but
may not create, members create but may not delete, an administrator may do all."""

from __future__ import annotations

import aiohttp

from xnatsync.emulator.server import Emulator

from .emuhelp import call, rows

TYPE = "xnat:subjectData"


async def ids(session: aiohttp.ClientSession, action: str) -> set[str]:
    found = await rows(session, "/data/projects", permissions=action, dataType=TYPE)
    assert all(set(r) >= {"id", "secondary_id"} for r in found)
    return {r["id"] for r in found}


async def test_projects_by_what_the_user_may_do(
    emu: Emulator, admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    assert "DEMO" in await ids(user, "create")  # a member
    assert "DEMO" not in await ids(user, "delete")
    emu.store.projects["DEMO"].members["user"] = "Collaborators"
    assert "DEMO" in await ids(user, "read")
    assert "DEMO" not in await ids(user, "create")
    assert "DEMO" not in await ids(user, "edit")
    assert await ids(admin, "delete") == set(emu.store.projects)
    status, text = await call(admin, "GET", "/data/projects",
                              params={"permissions": "write", "format": "json"})  # fmt: skip
    assert status == 500
    assert "permissions parameter" in text
