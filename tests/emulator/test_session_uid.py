"""An archived session keeps its StudyInstanceUID as `xnat:imageSessionData/UID`, and a project's
experiments listing gives it through the `UID` shortcut (`columns=…,UID`, xnat-api §3.3.1) and
filters by it (`UID=…`), as XNAT does: an importer finds a study already archived under another
label with one listing."""

from __future__ import annotations

import aiohttp

from xnatsync.emulator.dicom_synth import InstanceSpec, study_zip

from .emuhelp import rows

SPEC = InstanceSpec(patient_name="Uid^Test", patient_id="UID01", study_key="uid-listing")


async def test_the_study_uid_is_a_column_and_a_filter_of_the_experiments_listing(
    admin: aiohttp.ClientSession,
) -> None:
    params = {"import-handler": "DICOM-zip", "overwrite": "append",
              "dest": "/archive/projects/DEMO/subjects/UID01/experiments/UID01_MR"}  # fmt: skip
    body = study_zip(SPEC, [(1, "T1w", 1)])
    async with admin.post("/data/services/import", params=params, data=body,
                          headers={"Content-Type": "application/zip"}) as response:  # fmt: skip
        assert response.status == 200, await response.text()
    listed = await rows(admin, "/data/projects/DEMO/experiments", columns="ID,label,UID")
    by_label = {r["label"]: r for r in listed}
    assert by_label["UID01_MR"]["UID"] == SPEC.study_uid
    assert all("UID" in r for r in listed)  # "" where a session has none
    found = await rows(admin, "/data/projects/DEMO/experiments", UID=SPEC.study_uid)
    assert [r["label"] for r in found] == ["UID01_MR"]
