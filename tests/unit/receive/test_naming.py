"""Spool names from SOP Instance UIDs, and the Part-10 header we write (read back by pydicom)."""

from __future__ import annotations

import io

import pydicom
from hypothesis import given
from hypothesis import strategies as st

from xnatsync.receive.naming import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    file_header,
    is_conformant_uid,
    spool_name,
)


def test_a_conformant_uid_is_its_own_name() -> None:
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    assert spool_name(uid) == uid + ".dcm"
    assert spool_name(uid + "\0") == uid + ".dcm"  # padding a sender left is not part of it


def test_an_empty_uid_has_no_name() -> None:
    assert spool_name("") is None
    assert spool_name(" \0") is None


def test_a_bad_uid_is_made_safe_and_kept_apart() -> None:
    evil = spool_name("../../etc/passwd")
    assert evil is not None
    assert "/" not in evil
    assert not evil.startswith(".")
    assert spool_name("1.2.3a") != spool_name("1.2.3b")
    assert spool_name("1.2.3/4") != spool_name("1.2.3_4")  # same safe text, different UIDs
    assert spool_name("1.2.3/4") == spool_name("1.2.3/4")  # and a repeat is the same file
    too_long = "1." + "2" * 80
    name = spool_name(too_long)
    assert name is not None
    assert len(name) < 100
    assert not is_conformant_uid(too_long)
    assert not is_conformant_uid("1.02.3")
    assert not is_conformant_uid("1..2")


@given(st.text(min_size=1, max_size=200))
def test_every_name_is_one_safe_file_name(uid: str) -> None:
    name = spool_name(uid)
    if name is None:
        assert uid.rstrip("\0 ") == ""
        return
    assert name.endswith(".dcm")
    assert len(name.encode()) <= 120
    assert "/" not in name
    assert "\0" not in name
    assert not name.startswith(".")
    assert name.isascii()


def test_the_header_reads_back_as_a_part10_file() -> None:
    header = file_header(
        sop_class="1.2.840.10008.5.1.4.1.1.4",
        sop_instance="1.2.3.4.5",
        transfer_syntax="1.2.840.10008.1.2",
        source_ae="SCANNER1 ",
    )
    assert header[:132] == b"\0" * 128 + b"DICM"
    meta = pydicom.dcmread(io.BytesIO(header), force=True).file_meta
    assert meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"  # odd length: padded with NUL
    assert meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert meta.SourceApplicationEntityTitle == "SCANNER1"
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    # the group length is what pydicom would have written
    assert meta.FileMetaInformationGroupLength == len(header) - 132 - 12
