"""push.tree: a relative path of the pull layout read back into labels, and the rules for
names that can be read two ways."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from xnatsync.model import Level
from xnatsync.push.tree import Target, UnplacedError, place


def at(rel: str) -> PurePosixPath:
    """``rel`` below the tree's project folder ``P``."""
    return PurePosixPath(f"P/{rel}")


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("resources/DOCS/files/a/b.txt", Target(Level.PROJECT, "", "", "", "", "DOCS", "a/b.txt")),
        ("S1/resources/F/files/x", Target(Level.SUBJECT, "S1", "", "", "", "F", "x")),
        ("S1/E1/resources/N/files/n.txt",
         Target(Level.EXPERIMENT, "S1", "E1", "", "", "N", "n.txt")),
        ("S1/E1/scans/7-T1w/resources/DICOM/files/1.dcm",
         Target(Level.SCAN, "S1", "E1", "7", "T1w", "DICOM", "1.dcm")),
        ("S1/E1/scans/7/resources/DICOM/files/1.dcm",
         Target(Level.SCAN, "S1", "E1", "7", "", "DICOM", "1.dcm")),
        ("S1/E1/scans/7-T2w-FLAIR/resources/NII/files/a.nii",
         Target(Level.SCAN, "S1", "E1", "7", "T2w-FLAIR", "NII", "a.nii")),
        # a subject labelled "resources" still reads as a subject when a session follows
        ("resources/E1/resources/N/files/x",
         Target(Level.EXPERIMENT, "resources", "E1", "", "", "N", "x")),
    ],
)  # fmt: skip
def test_each_level_reads_back(rel: str, expected: Target) -> None:
    assert place(at(rel)) == expected


def test_the_pull_journal_gives_scan_ids_with_a_dash() -> None:
    rel = "S1/E1/scans/7-b-T1w/resources/DICOM/files/1.dcm"
    assert (place(at(rel)).scan, place(at(rel)).scan_type) == ("7", "b-T1w")
    known = {f"P/{rel}": (Level.SCAN, "7-b")}
    assert (place(at(rel), known).scan, place(at(rel), known).scan_type) == (
        "7-b", "T1w"
    )  # fmt: skip


@pytest.mark.parametrize(
    "rel",
    ["notes.txt", "S1/notes.txt", "S1/E1/scans/7-T1w/1.dcm", "S1/E1/other/x/resources/R/files/f"],
)  # fmt: skip
def test_a_path_outside_the_layout_is_refused_naming_it(rel: str) -> None:
    with pytest.raises(UnplacedError, match=r"S1|notes"):
        place(at(rel))


@pytest.mark.parametrize(
    ("folder", "level"), [("assessors", Level.ASSESSOR), ("reconstructions", Level.RECONSTRUCTION)]
)
def test_assessor_and_reconstruction_resources_name_their_owner_by_folder(
    folder: str, level: Level
) -> None:
    target = place(at(f"S1/E1/{folder}/A-1/resources/QC/files/sub/r.txt"))
    assert target == Target(level, "S1", "E1", "A-1", "", "QC", "sub/r.txt")
    assert target.owner == (level, "S1", "E1", "A-1")
