"""Import into existing sessions, named prearchive sessions, commit on import, archive-service
field parameters — through the whole emulator (xnat-api §5, §11; XNAT's TestImport,
TestPrearchiveMgmt and TestArchive show the requests and answers)."""

from __future__ import annotations

import io
import zipfile

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows
from xnatsync.emulator.dicom_import import as_archived, read_header
from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance, make_zip, study_zip
from xnatsync.emulator.server import Emulator

ZIP = {"Content-Type": "application/zip"}
BASE = InstanceSpec(patient_name="Spp^One", patient_id="SPP1", study_key="merge-1")
SESSIONS = "/data/projects/IMP/subjects/S1/experiments"
ARCHIVE = "/archive/projects/IMP/subjects/S1/experiments"


@pytest.fixture
async def imp(emu: Emulator, admin: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """The admin client, with a manual-archive project IMP."""
    status, body = await call(admin, "PUT", "/data/projects/IMP")
    assert status == 200, body
    return admin


async def _import(client: aiohttp.ClientSession, body: bytes, **params: str) -> tuple[int, str]:
    return await call(
        client,
        "POST",
        "/data/services/import",
        params={"import-handler": "DICOM-zip", **params},
        data=body,
        headers=ZIP,
    )


def _series(first: int, last: int, study: str = "merge-1") -> bytes:
    """Instances first..last of series 1 of one study, as a zip."""
    return make_zip(
        (f"{n}.dcm", make_instance(InstanceSpec(study_key=study, instance_number=n)))
        for n in range(first, last + 1)
    )


async def _digests(client: aiohttp.ClientSession, session: str) -> dict[str, str]:
    path = f"{SESSIONS}/{session}/scans/1/resources/DICOM/files"
    return {r["Name"]: r["digest"] for r in await rows(client, path)}


async def test_import_into_existing_session_keeps_date_and_resources(
    imp: aiohttp.ClientSession,
) -> None:
    # TestImport.testDataProjectExperimentOldRes
    assert (await call(imp, "PUT", "/data/projects/IMP/subjects/S1"))[0] == 201
    put = f"{SESSIONS}/MR0?xsiType=xnat:mrSessionData&date=2000-01-01"
    assert (await call(imp, "PUT", put))[0] == 201
    note = f"{SESSIONS}/MR0/resources/TEST/files/notes.txt?inbody=true"
    assert (await call(imp, "PUT", note, data=b"keep me"))[0] == 200
    status, body = await _import(
        imp, study_zip(BASE, [(1, "T1w", 2)]), dest=f"{ARCHIVE}/MR0", overwrite="append"
    )
    assert (status, body) == (200, f"/data{ARCHIVE}/MR0\r\n")
    assert [r["ID"] for r in await rows(imp, f"{SESSIONS}/MR0/scans")] == ["1"]
    (row,) = [r for r in await rows(imp, SESSIONS) if r["label"] == "MR0"]
    assert row["date"] == "2000-01-01"
    assert await call(imp, "GET", f"{SESSIONS}/MR0/resources/TEST/files/notes.txt") == (
        200,
        "keep me",
    )


async def test_resending_files_with_append_is_refused_and_changes_nothing(
    imp: aiohttp.ClientSession,
) -> None:
    # TestImport.testDataDuplicateScanFiles*, testDataScan2parts*
    dest = f"{ARCHIVE}/MR5"
    assert (await _import(imp, _series(1, 11), dest=dest))[0] == 200
    before = await _digests(imp, "MR5")
    assert len(before) == 11
    assert (await _import(imp, _series(1, 11), dest=dest))[0] == 400  # overwrite=none
    status, body = await _import(imp, _series(1, 11), dest=dest, overwrite="append")
    assert status == 400
    assert "Duplicate DICOM file uploaded." in body
    overlap = await _import(imp, _series(11, 16), dest=dest, overwrite="append")
    assert overlap[0] == 400  # one file in common: nothing of the request is archived
    assert await _digests(imp, "MR5") == before
    # as on XNAT, the refused upload stays in the prearchive, and later uploads of that study
    # and label would merge into it: a client clears it before sending the missing part
    (left,) = await rows(imp, "/data/prearchive/projects/IMP")
    assert left["status"] == "CONFLICT"
    refused = await rows(imp, f"/data{left['url']}/scans/1/resources/DICOM/files")
    assert len(refused) == 16  # all three refused uploads merged there: 1-11 twice, 11-16
    assert (await call(imp, "DELETE", "/data" + left["url"]))[0] == 200
    assert (await _import(imp, _series(12, 16), dest=dest, overwrite="append"))[0] == 200
    assert len(await _digests(imp, "MR5")) == 16
    again = await _import(
        imp, _series(1, 16), dest=dest, overwrite="append", overwrite_files="true"
    )
    assert again[0] == 200
    assert (await _import(imp, _series(11, 16), dest=dest, overwrite="delete"))[0] == 200
    assert len(await _digests(imp, "MR5")) == 16


async def test_named_prearchive_destination_creates_merges_and_refuses_other_study(
    imp: aiohttp.ClientSession,
) -> None:
    # TestImport.testPrearcMergeNewScan, testPrearcMergeDiffUidDicomZip
    named = "/prearchive/projects/IMP/20000101_100001/MR7"
    first = study_zip(BASE, [(1, "T1w", 2)])
    status, body = await _import(imp, first, dest=named, overwrite="append")
    assert (status, body) == (200, f"/data{named}\r\n")
    second = study_zip(BASE, [(2, "T2w", 1)])
    assert await _import(imp, second, dest=named, overwrite="append") == (200, f"/data{named}\r\n")
    scans = await rows(imp, f"/data{named}/scans")
    assert sorted(r["ID"] for r in scans) == ["1", "2"]
    got = await (await imp.get(f"/data{named}/scans/2/resources/DICOM/files/1.dcm")).read()
    with zipfile.ZipFile(io.BytesIO(second)) as sent:
        original = sent.read("2/1.dcm")
        assert got == as_archived(original, read_header("1.dcm", original))  # XNAT's meta
    (row,) = await rows(imp, "/data/prearchive/projects/IMP")
    assert (row["url"], row["status"], row["timestamp"]) == (named, "READY", "20000101_100001")
    other = study_zip(InstanceSpec(study_key="another"), [(3, "DWI", 1)])
    assert (await _import(imp, other, dest=named, overwrite="append"))[0] == 400
    assert sorted(r["ID"] for r in await rows(imp, f"/data{named}/scans")) == ["1", "2"]
    files = await rows(imp, f"/data{named}/scans/1/resources/DICOM/files")
    assert len(files) == 2
    assert (await call(imp, "DELETE", f"/data{named}"))[0] == 200
    assert await rows(imp, "/data/prearchive/projects/IMP") == []


async def test_named_destination_keeps_folder_and_takes_labels_from_the_request(
    imp: aiohttp.ClientSession,
) -> None:
    # TestPrearchiveMgmt.testPrearchiveWithDestination
    named = "/prearchive/projects/IMP/20000101_050505/11223344556677"
    status, _ = await _import(
        imp,
        study_zip(BASE, [(1, "T1w", 1)]),
        dest=named,
        subject="SUBJ9",
        session="SUBJ9_MRI",
        overwrite="append",
    )
    assert status == 200
    (row,) = await rows(imp, "/data/prearchive/projects/IMP")
    assert (row["folderName"], row["name"], row["subject"]) == (
        "11223344556677",
        "SUBJ9_MRI",
        "SUBJ9",
    )
    assert (await call(imp, "DELETE", f"/data{named}"))[0] == 200
    assert await rows(imp, "/data/prearchive/projects/IMP") == []


async def test_commit_on_import_leaves_one_ready_row_per_session(
    imp: aiohttp.ClientSession,
) -> None:
    # TestPrearchiveMgmt.addPrearchiveMgmtProjects + testPrearchiveListing
    body = study_zip(BASE, [(1, "T1w", 2)])
    labels = [("1", "MR11"), ("1", "MR12"), ("2", "MR21"), ("3", "MR31")]
    for subject, session in labels:
        status, answer = await _import(
            imp,
            body,
            project="IMP",
            subject=subject,
            session=session,
            overwrite="append",
            action="commit",
            **{"http-session-listener": f"t-{session}"},
        )
        assert status == 200, answer
        assert answer.startswith("/data/prearchive/projects/IMP/")
    found = await rows(imp, "/data/prearchive/projects/IMP")
    assert sorted((r["subject"], r["name"], r["status"]) for r in found) == [
        (s, e, "READY") for s, e in labels
    ]
    for row in found:
        assert (await call(imp, "GET", "/data" + row["url"]))[0] == 200
    async with imp.get("/data/status/t-MR31?format=json") as response:
        assert response.status == 200
        last = (await response.json())["msgs"][0][-1]
    assert (last["status"], last["terminal"]) == ("COMPLETED", True)
    assert last["msg"].startswith("Prearchive:/data/prearchive/projects/IMP/")


async def test_auto_archive_flag_archives_on_commit_and_only_marks_otherwise(
    imp: aiohttp.ClientSession,
) -> None:
    body = study_zip(BASE, [(1, "T1w", 1)])
    status, answer = await _import(
        imp, body, project="IMP", subject="S1", session="AA1", action="commit", AA="true"
    )
    assert (status, answer) == (200, "/data/archive/projects/IMP/subjects/S1/experiments/AA1\r\n")
    status, answer = await _import(imp, body, project="IMP", subject="S1", session="AA2", AA="true")
    assert status == 200
    (row,) = await rows(imp, "/data/prearchive/projects/IMP")
    assert (row["name"], row["status"], row["autoarchive"]) == ("AA2", "RECEIVING", "AutoArchive")


async def test_archive_service_applies_xml_path_parameters(imp: aiohttp.ClientSession) -> None:
    # TestArchive.testBasicArchiveFromPrearcWParams
    body = study_zip(BASE, [(1, "T1w", 3)])
    status, answer = await _import(imp, body, dest="/prearchive/projects/IMP", overwrite="append")
    assert status == 200
    src = answer.strip()
    xsi = "xnat:mrSessionData"
    params = {
        "src": src,
        "overwrite": "append",
        f"{xsi}/project": "IMP",
        f"{xsi}/subject_id": "NEWSUBJ",
        f"{xsi}/label": "MR1",
        f"{xsi}/scans/scan[0][@xsi:type=xnat:mrScanData]/type": "ARC_TEST",
    }
    bad = await call(imp, "POST", "/data/services/archive", params={**params, f"{xsi}/bogus": "1"})
    assert bad[0] == 400
    assert f"{xsi}/bogus" in bad[1]
    status, answer = await call(imp, "POST", "/data/services/archive", params=params)
    assert (status, answer) == (
        200,
        "/data/archive/projects/IMP/subjects/NEWSUBJ/experiments/MR1\r\n",
    )
    base = "/data/projects/IMP/subjects/NEWSUBJ/experiments/MR1/scans/ARC_TEST"
    files = await rows(imp, f"{base}/resources/DICOM/files")
    assert sorted(r["Name"] for r in files) == ["1.dcm", "2.dcm", "3.dcm"]
    (scan,) = await rows(imp, "/data/projects/IMP/subjects/NEWSUBJ/experiments/MR1/scans")
    assert (scan["ID"], scan["type"]) == ("1", "ARC_TEST")


async def test_si_importer_merges_another_study_into_a_named_session(
    imp: aiohttp.ClientSession,
) -> None:
    # TestImport.testPrearcMergeDiffUidSi: the legacy importer allows what DICOM-zip refuses
    named = "/prearchive/projects/IMP/20000101_100001/MR8"
    first = study_zip(BASE, [(1, "T1w", 1)])
    other = study_zip(InstanceSpec(study_key="another"), [(2, "DWI", 1)])
    for body in (first, other):
        status, text = await _import(
            imp, body, dest=named, overwrite="append", **{"import-handler": "SI"}
        )
        assert (status, text) == (200, f"/data{named}\r\n")
    assert sorted(r["ID"] for r in await rows(imp, f"/data{named}/scans")) == ["1", "2"]


async def test_commit_on_import_ignores_unparsable_members_unless_told_not_to(
    imp: aiohttp.ClientSession,
) -> None:
    # XNAT's Importer: an explicit action=commit defaults Ignore-Unparsable to true
    good = make_instance(InstanceSpec(study_key="merge-1", patient_id="SPP1"))
    body = make_zip([("1.dcm", good), ("notes.txt", b"not DICOM")])
    query = {"project": "IMP", "subject": "S1", "session": "U1", "action": "commit"}
    status, text = await _import(imp, body, **query)
    assert status == 200, text
    status, text = await _import(imp, body, **query, **{"Ignore-Unparsable": "false"})
    assert status == 400
    assert "unable to read DICOM object notes.txt" in text


async def test_failed_import_ends_its_status_queue_with_failed(imp: aiohttp.ClientSession) -> None:
    body = study_zip(BASE, [(1, "T1w", 1)])
    listener = {"http-session-listener": "t-bad"}
    status, text = await _import(imp, body, project="NOPE", action="commit", **listener)
    assert (status, "Invalid project: NOPE" in text) == (400, True)
    async with imp.get("/data/status/t-bad", params={"format": "json"}) as response:
        messages = (await response.json())["msgs"][0]
    assert messages[0] == {
        "status": "PROCESSING",
        "msg": "Determining destination",
        "terminal": False,
    }
    assert messages[-1] == {"status": "FAILED", "msg": "Invalid project: NOPE", "terminal": True}
