"""The DICOM pieces end to end through the emulator's import service: discover a folder of two
studies, group them, label them, stream one zip per study (or per part) with its length known,
and read the archived files back through the REST API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp

from tests.unit.dicom.dicomfiles import spec, write, write_instance
from xnatsync.dicom.dicomzip import ZipPlan, zip_stream
from xnatsync.dicom.discover import discover
from xnatsync.dicom.instance import Instance, Skipped
from xnatsync.dicom.labels import Labelled, Naming, assign, parse_template
from xnatsync.dicom.studies import group, part_instances, split
from xnatsync.emulator.dicom_import import as_archived, read_header
from xnatsync.emulator.server import Emulator


async def found_in(source: Path) -> tuple[list[Instance], list[Skipped]]:
    async with discover([source]) as results:
        found = [item async for item in results]
    return [f for f in found if isinstance(f, Instance)], [
        f for f in found if isinstance(f, Skipped)
    ]


async def send(session: aiohttp.ClientSession, plan: ZipPlan, query: str) -> str:
    headers = {"Content-Type": "application/zip", "Content-Length": str(plan.total_size)}
    async with session.post(
        f"/data/services/import?import-handler=DICOM-zip&{query}",
        data=zip_stream(plan, block=4096),
        headers=headers,
    ) as response:
        text = await response.text()
        assert response.status == 200, text
        return text


async def files_of(
    session: aiohttp.ClientSession, subject: str, experiment: str, scan: str
) -> dict[str, str]:
    uri = (
        f"/data/projects/DEMO/subjects/{subject}/experiments/{experiment}"
        f"/scans/{scan}/resources/DICOM/files"
    )
    async with session.get(uri, params={"format": "json"}) as response:
        assert response.status == 200
        rows = (await response.json())["ResultSet"]["Result"]
    return {row["Name"]: row["digest"] for row in rows}


def md5(path: Path) -> str:
    """The MD5 of what XNAT stores for the file sent: its data set behind XNAT's own preamble
    and file meta."""
    data = path.read_bytes()
    return hashlib.md5(as_archived(data, read_header(path.name, data))).hexdigest()


async def test_two_studies_discovered_labelled_zipped_and_archived(
    emu: Emulator, tmp_path: Path
) -> None:
    src = tmp_path / "export"
    a1 = write_instance(src / "day1" / "s1" / "IM1", spec("A", 1, 1, patient_id="PX 1"))
    a2 = write_instance(src / "day1" / "s1b" / "IM1", spec("A", 1, 2, patient_id="PX 1"))
    a3 = write_instance(src / "day1" / "s2" / "IM1", spec("A", 2, 1, patient_id="PX 1"))
    write_instance(src / "copy" / "IM1", spec("A", 2, 1, patient_id="PX 1"))  # a duplicate
    b1 = write_instance(src / "day2" / "001.dcm", spec("B", 4, 1, patient_id="PX 1"))
    write(src / "README.txt", b"exported by the scanner\n")

    instances, skipped = await found_in(src)
    grouping = group(instances)
    labelled = assign(grouping.studies, Naming(session=parse_template("{PatientID}")))

    assert [s.path.name for s in skipped] == ["README.txt"]
    assert len(grouping.duplicates) == 1
    assert all(isinstance(item, Labelled) for item in labelled)
    sessions = {
        item.study.uid: (item.subject, item.session)
        for item in labelled
        if isinstance(item, Labelled)
    }
    assert sessions == {
        spec("A").study_uid: ("Doe_Jane", "PX_1"),
        spec("B").study_uid: ("Doe_Jane", "PX_1_2"),
    }  # in StudyInstanceUID order: whichever UID sorts first keeps the plain label

    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as session:
        for item in labelled:
            assert isinstance(item, Labelled)
            dest = f"/archive/projects/DEMO/subjects/{item.subject}/experiments/{item.session}"
            plan = ZipPlan(item.study.instances)
            assert (await send(session, plan, f"dest={dest}")).startswith("/data/archive/")
        a_session = sessions[spec("A").study_uid][1]
        assert await files_of(session, "Doe_Jane", a_session, "1") == {
            "IM1-" + spec("A", 1, 1).sop_uid: md5(a1),
            "IM1-" + spec("A", 1, 2).sop_uid: md5(a2),
        }
        assert await files_of(session, "Doe_Jane", a_session, "2") == {"IM1": md5(a3)}
        assert await files_of(session, "Doe_Jane", sessions[spec("B").study_uid][1], "4") == {
            "001.dcm": md5(b1)
        }


async def test_a_study_sent_in_parts_with_append(emu: Emulator, tmp_path: Path) -> None:
    paths = {
        (series, n): write_instance(tmp_path / f"s{series}" / f"{n}.dcm", spec("C", series, n))
        for series in (1, 2, 3)
        for n in (1, 2)
    }
    instances, _ = await found_in(tmp_path)
    [study] = group(instances).studies
    parts = split(study, budget=2 * max(i.size for i in instances))
    assert len(parts) == 3

    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as session:
        dest = "dest=/archive/projects/DEMO/subjects/SUBJ_C/experiments/SESS_C&overwrite=append"
        for part in parts:
            await send(session, ZipPlan(part_instances(part)), dest)
        for series in (1, 2, 3):
            assert await files_of(session, "SUBJ_C", "SESS_C", str(series)) == {
                f"{n}.dcm": md5(paths[(series, n)]) for n in (1, 2)
            }


async def test_default_labels_match_what_the_server_derives(emu: Emulator, tmp_path: Path) -> None:
    cases = {
        "plain": spec("D1", patient_name="Roe^Ann B", patient_id="ID 42"),
        "comments": spec("D2", patient_comments="Project: DEMO Subject: S7 Session: V7"),
    }
    for key, made in cases.items():
        write_instance(tmp_path / key / "1.dcm", made)
    instances, _ = await found_in(tmp_path)
    ours = {
        item.study.uid: (item.subject, item.session)
        for item in assign(group(instances).studies, Naming())
        if isinstance(item, Labelled)
    }

    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as session:
        for found in instances:
            await send(session, ZipPlan([found]), "PROJECT_ID=DEMO")  # the server names them
        async with session.get("/data/prearchive/projects/DEMO", params={"format": "json"}) as r:
            rows = (await r.json())["ResultSet"]["Result"]
    theirs = {row["tag"]: (row["subject"], row["folderName"]) for row in rows}

    assert ours == theirs
    assert ours[cases["plain"].study_uid] == ("Roe_Ann_B", "ID_42")
    assert ours[cases["comments"].study_uid] == ("S7", "V7")
