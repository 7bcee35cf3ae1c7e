"""The XNAT version the emulator answers as (`--xnat-version`, xnat-api §2.5, §11.6, §12) and the
behaviours clients branch on: buildInfo, `/data/version`, `Direct-Archive`, tar uploads."""

from __future__ import annotations

import argparse
import io
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows
from xnatsync.emulator import cli
from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance, study_zip
from xnatsync.emulator.server import run_emulator
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.emulator.xnat_version import XnatVersion

SPEC = InstanceSpec(patient_name="Ver^One", patient_id="VER1", study_key="version-1")
IMPORT = "/data/services/import"


@asynccontextmanager
async def _admin(version: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An unseeded emulator answering as `version`, with a manual project V; its admin client."""
    async with (
        run_emulator(EmulatorConfig(xnat_version=version)) as emu,
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin,
    ):
        assert (await call(admin, "PUT", "/data/projects/V"))[0] == 200
        yield admin


@pytest.mark.parametrize(
    ("version", "build_info", "data_version"),
    [("1.6.5", 404, 200), ("1.7.6", 200, 404), ("1.8.10", 200, 404), ("1.9.2.1", 200, 404)],
)
async def test_build_info_and_data_version_answer_as_the_version(
    version: str, build_info: int, data_version: int
) -> None:
    async with _admin(version) as admin:
        async with admin.get("/xapi/siteConfig/buildInfo") as response:
            assert response.status == build_info
            if build_info == 200:
                assert (await response.json())["version"] == version
        for path in ("/data/version", "/REST/version"):
            status, text = await call(admin, "GET", path)
            assert status == data_version
            if data_version == 200:
                assert text == version


async def test_default_version_is_1_8_10() -> None:
    assert EmulatorConfig().xnat_version == "1.8.10"
    async with (
        _admin(EmulatorConfig().xnat_version) as admin,
        admin.get("/xapi/siteConfig/buildInfo") as response,
    ):
        assert (await response.json())["version"] == "1.8.10"


@pytest.mark.parametrize(("version", "archived"), [("1.8.2", False), ("1.8.3", True)])
async def test_direct_archive_is_honoured_from_1_8_3(version: str, archived: bool) -> None:
    async with _admin(version) as admin:
        params = {
            "import-handler": "DICOM-zip",
            "PROJECT_ID": "V",
            "SUBJECT_ID": "S1",
            "EXPT_LABEL": "D1",
            "Direct-Archive": "true",
        }
        body = study_zip(SPEC, [(1, "T1w", 2)])
        status, text = await call(
            admin,
            "POST",
            IMPORT,
            params=params,
            data=body,
            headers={"Content-Type": "application/zip"},
        )
        assert status == 200
        prearchived = await rows(admin, "/data/prearchive/projects/V")
        if archived:
            assert text == "/data/archive/projects/V/subjects/S1/experiments/D1\r\n"
            assert prearchived == []
        else:  # an old server ignores the flag: the session waits in the prearchive
            assert text.startswith("/data/prearchive/projects/V/")
            assert [r["status"] for r in prearchived] == ["RECEIVING"]
        found = (await call(admin, "GET", "/data/projects/V/experiments/D1"))[0]
        assert found == (200 if archived else 404)


def _tgz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for number in (1, 2):
            data = make_instance(
                InstanceSpec(study_key="version-1", instance_number=number, patient_id="VER1")
            )
            info = tarfile.TarInfo(f"series/{number}.dcm")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(("version", "imported"), [("1.7.6", False), ("1.8.3", True)])
async def test_tar_uploads_are_read_from_1_8_3(version: str, imported: bool) -> None:
    async with _admin(version) as admin:
        params = {"import-handler": "DICOM-zip", "PROJECT_ID": "V", "EXPT_LABEL": "T1"}
        headers = {"Content-Type": "application/x-gtar"}
        status, text = await call(
            admin, "POST", IMPORT, params=params, data=_tgz(), headers=headers
        )
        assert status == 200
        found = await rows(admin, "/data/prearchive/projects/V")
        if imported:
            assert text.startswith("/data/prearchive/projects/V/")
            assert len(found) == 1
        else:  # the old importer read it as a zip stream and found no entries
            assert text == ""
            assert found == []


def test_versions_parse_and_compare() -> None:
    assert XnatVersion.parse("1.8.10").at_least(1, 8, 3)
    assert not XnatVersion.parse("1.8.2").at_least(1, 8, 3)
    assert XnatVersion.parse("1.8.3").direct_archive
    assert XnatVersion.parse("1.9.0-SNAPSHOT").tar_import
    assert not XnatVersion.parse("1.6.5").has_xapi
    assert XnatVersion.parse("1.8.10") > XnatVersion.parse("1.8.9")
    for bad in ("", "1", "one.eight", "1.8.x", "v1.8.10", "1..8"):
        with pytest.raises(ValueError, match="malformed"):
            XnatVersion.parse(bad)


def test_malformed_version_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"'1\.x'"):
        EmulatorConfig(xnat_version="1.x")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["--port", "0", "--xnat-version", "1.x"])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--xnat-version" in err
    assert "'1.x'" in err
