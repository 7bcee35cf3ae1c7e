"""Project identity clashes on PUT (xnat-api §11.10; RT TestProjectValidation, every method):
a new project whose ID, title, secondary ID or alias equals, ignoring case, any of an existing
project's ID, title, secondary ID or alias → 409; the existing project's own update → 200."""

from __future__ import annotations

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows

# the existing project's four identities, all different
EXISTING = {"id": "VALP", "name": "ValTitle", "secondary_ID": "ValRun", "alias": "ValAlias"}
NEW_ID = "FRESHP"


@pytest.fixture
async def existing(admin: aiohttp.ClientSession) -> None:
    """The project the other PUTs clash with (created like the suite's set-up)."""
    query = "name=ValTitle&secondary_ID=ValRun&alias=ValAlias"
    assert (await call(admin, "PUT", f"/data/projects/VALP?{query}"))[0] == 200


def _requests() -> list[tuple[str, str, str]]:
    """(name, URL, what clashes) for each of the suite's crossings but the duplicate ID."""
    cases = []
    for source, value in EXISTING.items():
        for field in ("id", "name", "secondary_ID", "alias"):
            if (source, field) == ("id", "id"):
                continue  # testDuplicateId: a PUT on the existing URL, below
            if field == "id":
                url = f"/data/projects/{value}"
            else:
                url = f"/data/projects/{NEW_ID}?{field}={value.upper()}"
            cases.append((f"{source}-as-{field}", url, value))
    return cases


@pytest.mark.usefixtures("existing")
@pytest.mark.parametrize(("name", "url", "value"), _requests(), ids=[c[0] for c in _requests()])
async def test_identity_clash_is_refused(
    admin: aiohttp.ClientSession, name: str, url: str, value: str
) -> None:
    status, text = await call(admin, "PUT", url)
    assert status == 409, (name, text)
    assert "conflicts" in text
    ids = {r["ID"] for r in await rows(admin, "/data/projects")}
    assert NEW_ID not in ids
    # the existing project is untouched (an alias in the URL must not update it)
    project = next(r for r in await rows(admin, "/data/projects") if r["ID"] == "VALP")
    assert (project["name"], project["secondary_ID"]) == ("ValTitle", "ValRun")


@pytest.mark.usefixtures("existing")
async def test_lower_case_id_clashes(admin: aiohttp.ClientSession) -> None:
    status, _ = await call(admin, "PUT", "/data/projects/valp")
    assert status == 409


@pytest.mark.usefixtures("existing")
async def test_duplicate_id_by_non_member_is_refused(user: aiohttp.ClientSession) -> None:
    """testDuplicateId: another user PUTs the existing project's URL."""
    status, _ = await call(user, "PUT", "/data/projects/VALP")
    assert status in (403, 409)
    # a project `user` can see (public PUB) but not edit → 403
    assert (await call(user, "PUT", "/data/projects/PUB?name=Mine"))[0] == 403


@pytest.mark.usefixtures("existing")
async def test_own_update_succeeds(admin: aiohttp.ClientSession) -> None:
    query = "name=ValTitle&secondary_ID=VALRUN&alias=ValAlias&description=updated"
    status, text = await call(admin, "PUT", f"/data/projects/VALP?{query}")
    assert status == 200, text
    project = next(r for r in await rows(admin, "/data/projects") if r["ID"] == "VALP")
    assert (project["secondary_ID"], project["description"]) == ("VALRUN", "updated")
    status, _ = await call(admin, "PUT", "/data/projects/VALP?name=Renamed")
    assert status == 200


@pytest.mark.usefixtures("existing")
async def test_update_into_another_projects_name_is_refused(
    admin: aiohttp.ClientSession,
) -> None:
    status, _ = await call(admin, "PUT", "/data/projects/DEMO?name=VALTITLE")
    assert status == 409


@pytest.mark.usefixtures("existing")
async def test_unrelated_new_project_is_created(admin: aiohttp.ClientSession) -> None:
    status, _ = await call(admin, "PUT", f"/data/projects/{NEW_ID}?name=Other&alias=OtherA")
    assert status == 200
    assert (await call(admin, "GET", "/data/projects/OtherA?format=json"))[0] == 200
