"""Pure parts of the import service: header reads, identification rules, `dest` parsing."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xnatsync.emulator.archiving import Destination, parse_dest
from xnatsync.emulator.dicom_import import (
    DCM4CHE2_CLASS_UID,
    DCM4CHE2_VERSION,
    BadArchive,
    Naming,
    UnreadableDicom,
    as_archived,
    clean_label,
    identify,
    iter_archive,
    read_header,
    session_xsi_type,
)
from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance


@given(st.text())
def test_clean_label_only_keeps_label_characters(text: str) -> None:
    cleaned = clean_label(text)
    assert re.fullmatch(r"[A-Za-z0-9_\-]*", cleaned)
    assert len(cleaned) == len(text.strip())


def test_read_header_and_unreadable() -> None:
    spec = InstanceSpec(series_number=12, series_description="T2 FLAIR", modality="MR")
    header = read_header("x.dcm", make_instance(spec))
    assert (header.series_number, header.series_description) == ("12", "T2 FLAIR")
    assert header.study_uid == spec.study_uid
    with pytest.raises(UnreadableDicom, match=r"unable to read DICOM object notes\.txt"):
        read_header("notes.txt", b"plain text, no preamble")


def test_identification_rules() -> None:
    exists = {"PROJ"}.__contains__
    tagged = read_header(
        "a",
        make_instance(InstanceSpec(patient_comments="Project: PROJ Subject: s01 Session: s01_v1")),
    )
    who = identify(tagged, Naming(), exists)
    assert (who.project, who.subject, who.session) == ("PROJ", "s01", "s01_v1")
    plain = read_header("b", make_instance(InstanceSpec(patient_name="Doe^J", patient_id="")))
    who = identify(plain, Naming(), exists)
    assert (who.project, who.subject, who.session) == ("Unassigned", "Doe_J", "dicom_upload")
    who = identify(plain, Naming("P", "S", "E"), exists)
    assert (who.project, who.subject, who.session) == ("P", "S", "E")


def test_session_type_prefers_pet() -> None:
    assert session_xsi_type({"CT", "PT"}) == "xnat:petSessionData"
    assert session_xsi_type({"MR"}) == "xnat:mrSessionData"
    assert session_xsi_type({"XA"}) == "xnat:otherDicomSessionData"


@pytest.mark.parametrize(
    ("dest", "parsed"),
    [
        ("/archive", Destination(True)),
        ("/archive/projects/P", Destination(True, "P")),
        ("/archive/projects/P/subjects/S/experiments/E", Destination(True, "P", "S", "E")),
        ("/data/archive/projects/P/subjects/S", Destination(True, "P", "S")),
        ("/prearchive", Destination(False)),
        ("/prearchive/projects/P/20240101_010101000/E", Destination(False, "P", None, "E",
                                                               "20240101_010101000")),
        ("/elsewhere", None),
        ("/archive/projects/P/experiments/E", None),
        ("/prearchive/projects/P/ts", None),
    ],
)  # fmt: skip
def test_parse_dest(dest: str, parsed: Destination | None) -> None:
    assert parse_dest(dest) == parsed


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "upload.zip"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(BadArchive):
        list(iter_archive(junk, "upload.zip"))


def test_comment_assignments_follow_xnats_pattern() -> None:
    """``Key: value`` counts only with a value of [A-Za-z0-9_-] ending at whitespace, ``,``,
    ``;`` or the end (ContainedAssignmentExtractor): ``Session: a.b`` assigns nothing."""
    exists = {"PROJ"}.__contains__

    def session_of(comments: str) -> str:
        spec = InstanceSpec(patient_comments=comments, patient_id="PID9")
        return identify(read_header("a", make_instance(spec)), Naming(), exists).session

    assert session_of("Session: v1") == "v1"
    assert session_of("note;Session:v2,other") == "v2"
    assert session_of("Session: a.b") == "PID9"
    assert session_of("Session: ") == "PID9"
    assert session_of("XSession: v3") == "PID9"


@pytest.mark.parametrize("keyword", ["SOPClassUID", "SOPInstanceUID"])
def test_an_object_without_its_sop_uids_is_refused(keyword: str) -> None:
    ds = pydicom.dcmread(io.BytesIO(make_instance(InstanceSpec())))
    delattr(ds, keyword)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    with pytest.raises(UnreadableDicom):
        read_header("x.dcm", out.getvalue())


@pytest.mark.parametrize("explicit", [True, False])
def test_a_dataset_without_preamble_is_read_as_dcm4che_reads_it(explicit: bool) -> None:
    """XNAT's importer hands each file to dcm4che's DicomInputStream without a transfer syntax:
    with no preamble it guesses one from the first element, so a bare dataset is DICOM."""
    spec = InstanceSpec(series_number=3, modality="MR")
    ds = pydicom.dcmread(io.BytesIO(make_instance(spec)))
    bare = io.BytesIO()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.preamble = None
    ds.save_as(bare, implicit_vr=not explicit, little_endian=True, enforce_file_format=False)
    data = bare.getvalue()
    assert data[128:132] != b"DICM"
    header = read_header("bare", data)
    assert (header.study_uid, header.series_number) == (spec.study_uid, "3")
    for junk in (b"\x08\x00\x05\x00garbage", b"%PDF-1.4 not dicom at all", b""):
        with pytest.raises(UnreadableDicom):
            read_header("junk", junk)


def test_an_archived_object_has_xnat_s_preamble_and_file_meta() -> None:
    """GradualDicomImporter.write writes a zero preamble and file meta of its own (dcm4che2's
    implementation, the object's SOP UIDs and transfer syntax; guessed when it came bare),
    then the data set."""
    spec = InstanceSpec(series_number=3, modality="MR")
    part10 = make_instance(spec)
    meta_end = 132 + 12 + int.from_bytes(part10[140:144], "little")
    data_set = part10[meta_end:]
    tagged = b"TIFF" * 32 + part10[128:]  # a preamble some writers fill
    header = read_header("x", tagged)
    for sent in (tagged, data_set):  # Part-10 from another writer, and a bare data set
        stored = as_archived(sent, header)
        assert stored[:132] == bytes(128) + b"DICM"
        assert stored.endswith(data_set)
        assert stored != part10  # another writer's meta: other bytes, as on XNAT
        ds = pydicom.dcmread(io.BytesIO(stored))
        meta = ds.file_meta
        assert (meta.ImplementationClassUID, meta.ImplementationVersionName) == (
            DCM4CHE2_CLASS_UID,
            DCM4CHE2_VERSION,
        )
        assert (meta.MediaStorageSOPInstanceUID, ds.SOPInstanceUID) == (spec.sop_uid,) * 2
        assert (
            meta.TransferSyntaxUID
            == pydicom.dcmread(io.BytesIO(part10)).file_meta.TransferSyntaxUID
        )
    assert as_archived(as_archived(tagged, header), header) == as_archived(tagged, header)
