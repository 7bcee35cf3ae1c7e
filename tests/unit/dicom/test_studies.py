"""studies: grouping by StudyInstanceUID, series and instance order, duplicate instances,
instances without a study, and splitting at scan boundaries under a byte budget."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xnatsync.dicom.instance import Instance
from xnatsync.dicom.studies import (
    NO_SOP_CLASS,
    NO_SOP_INSTANCE,
    NO_STUDY,
    Duplicate,
    Rejected,
    group,
    part_instances,
    scans,
    split,
)


def inst(
    path: str,
    study: str = "1.2.1",
    series: str = "1",
    number: str = "1",
    sop: str | None = None,
    size: int = 100,
    series_uid: str | None = None,
    sop_class: str = "1.2.840.10008.5.1.4.1.1.4",
) -> Instance:
    return Instance(
        path=Path(path), size=size, mtime_ns=0, part10=True, study_uid=study,
        series_uid=series_uid if series_uid is not None else f"{study}.{series}",
        series_number=series, instance_number=number,
        sop_uid=sop if sop is not None else f"{study}.{series}.{number}",
        sop_class_uid=sop_class,
    )  # fmt: skip


def test_a_folder_of_several_studies_is_split_by_uid_in_uid_order() -> None:
    grouping = group(
        [
            inst("/d/b1", study="1.9"),
            inst("/d/a1", study="1.10"),
            inst("/e/a2", study="1.9", number="2"),
        ]
    )

    assert [s.uid for s in grouping.studies] == ["1.10", "1.9"]  # string order
    assert [i.path.name for i in grouping.studies[1].instances] == ["b1", "a2"]
    assert grouping.studies[1].count == 2
    assert grouping.studies[1].size == 200


def test_series_by_number_numerically_then_text_then_uid_instances_by_number() -> None:
    grouping = group(
        [
            inst("/x/10-1", series="10", number="1"),
            inst("/x/2-10", series="2", number="10"),
            inst("/x/2-9", series="2", number="9"),
            inst("/x/none", series="", number="1", series_uid="1.2.1.zz"),
            inst("/x/2b", series="2", number="1", series_uid="1.2.1.2b"),
        ]
    )

    [study] = grouping.studies
    assert [(s.number, s.uid) for s in study.series] == [
        ("2", "1.2.1.2"),
        ("2", "1.2.1.2b"),
        ("10", "1.2.1.10"),
        ("", "1.2.1.zz"),
    ]
    assert [i.path.name for i in study.series[0].instances] == ["2-9", "2-10"]
    assert study.first.path.name == "2-9"


def test_duplicate_instance_sent_once_first_path_wins_and_reported_once() -> None:
    grouping = group(
        [
            inst("/copy/b/1.dcm", sop="9.9"),
            inst("/copy/a/1.dcm", sop="9.9"),
            inst("/copy/a-b/1.dcm", sop="9.9"),
            inst("/other/1.dcm", study="1.3", sop="9.9"),  # same SOP UID in another study
        ]
    )

    study = grouping.studies[0]
    assert [i.path for i in study.instances] == [Path("/copy/a/1.dcm")]
    assert grouping.duplicates == (
        Duplicate("1.2.1", "9.9", Path("/copy/a/1.dcm"), Path("/copy/a-b/1.dcm")),
        Duplicate("1.2.1", "9.9", Path("/copy/a/1.dcm"), Path("/copy/b/1.dcm")),
    )
    assert grouping.studies[1].count == 1


def test_instances_xnat_would_refuse_are_listed_not_grouped() -> None:
    grouping = group(
        [
            inst("/z/2", study=""),
            inst("/z/1", study="", sop=""),
            inst("/y/no-sop", sop=""),
            inst("/y/no-class", number="2", sop_class=""),
            inst("/a/1"),
        ]
    )

    assert grouping.rejected == (
        Rejected(Path("/y/no-class"), NO_SOP_CLASS),
        Rejected(Path("/y/no-sop"), NO_SOP_INSTANCE),
        Rejected(Path("/z/1"), NO_STUDY),
        Rejected(Path("/z/2"), NO_STUDY),
    )
    assert [i.path for s in grouping.studies for i in s.instances] == [Path("/a/1")]


def test_split_at_scan_boundaries_within_budget() -> None:
    study = group(
        [
            inst(f"/s{s}/{n}", series=str(s), number=str(n), size=100)
            for s in (1, 2, 3)
            for n in (1, 2)
        ]
        + [inst("/s2b/1", series="2", series_uid="1.2.1.2b", sop="1.2.1.2b.1", size=100)]
    ).studies[0]

    assert [[(s.number, s.uid) for s in unit] for unit in scans(study)] == [
        [("1", "1.2.1.1")],
        [("2", "1.2.1.2"), ("2", "1.2.1.2b")],
        [("3", "1.2.1.3")],
    ]
    parts = split(study, budget=300)
    assert [[s.uid for s in part] for part in parts] == [
        ["1.2.1.1"],  # scan 2 (300 bytes) does not fit beside scan 1
        ["1.2.1.2", "1.2.1.2b"],
        ["1.2.1.3"],
    ]
    assert [[s.uid for s in part] for part in split(study, budget=500)] == [
        ["1.2.1.1", "1.2.1.2", "1.2.1.2b"],
        ["1.2.1.3"],
    ]
    assert [len(part) for part in split(study, budget=50)] == [1, 2, 1]  # oversize scans alone
    with pytest.raises(ValueError, match="budget"):
        split(study, budget=0)


@given(
    sizes=st.lists(st.tuples(st.integers(1, 6), st.integers(0, 1000)), min_size=1, max_size=40),
    budget=st.integers(1, 3000),
)
def test_split_covers_the_study_in_order_and_keeps_the_budget(
    sizes: list[tuple[int, int]], budget: int
) -> None:
    study = group(
        inst(f"/f/{i}", series=str(series), number=str(i), size=size)
        for i, (series, size) in enumerate(sizes)
    ).studies[0]

    parts = split(study, budget)

    assert [i for part in parts for i in part_instances(part)] == list(study.instances)
    for part in parts:
        total = sum(i.size for i in part_instances(part))
        numbers = {s.number for s in part}
        assert total <= budget or len(numbers) == 1  # only a lone oversize scan exceeds it
    numbers_per_part = [{s.number for s in part} for part in parts]
    for a, b in itertools.pairwise(numbers_per_part):
        assert not a & b  # a scan is never cut
