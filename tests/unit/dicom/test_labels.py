"""labels: templates over DICOM tags, fixed values, XNAT's defaults and cleaning, empty labels,
and one session label per study within a run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from xnatsync.dicom.instance import Instance
from xnatsync.dicom.labels import (
    LabelFailure,
    Labelled,
    Naming,
    assign,
    fixed,
    parse_template,
    xnat_safe,
)
from xnatsync.dicom.studies import Study, group
from xnatsync.emulator.dicom_import import clean_label
from xnatsync.errors import UsageError


def study(uid: str, **tags: str) -> Study:
    fields = {"patient_name": "Doe^Jane", "patient_id": "PID1", "study_date": "20240102"}
    fields.update(tags)
    instance = Instance(
        path=Path(f"/d/{uid}"), size=1, mtime_ns=0, part10=True, study_uid=uid,
        sop_uid=f"{uid}.1", sop_class_uid="1.2.3", series_number="1", **fields,
    )  # fmt: skip
    return group([instance]).studies[0]


def labels(result: list[Labelled | LabelFailure]) -> list[tuple[str, str, str]]:
    return [
        (r.study.uid, r.subject, r.session) if isinstance(r, Labelled) else (r.study.uid, "!", "!")
        for r in result
    ]


def test_defaults_follow_xnat_subject_patient_name_session_patient_id() -> None:
    [result] = assign([study("1.1", patient_name="Doe^Jane", patient_id="P 1/2")], Naming())
    assert isinstance(result, Labelled)
    assert (result.subject, result.session, result.suffix) == ("Doe_Jane", "P_1_2", 1)


@pytest.mark.parametrize(
    ("patient_comments", "study_comments", "subject", "session"),
    [
        ("Project: P1 Subject: S01 Session: S01_MR1", "", "S01", "S01_MR1"),
        ("subject:s2;session : v-3", "", "s2", "v-3"),  # any case, spaces around ':'
        ("", "Session: FromStudy", "Doe_Jane", "FromStudy"),
        ("Session: a, Session: b", "", "Doe_Jane", "a"),  # one at the very start wins
        ("note; Session: a, Session: b", "", "Doe_Jane", "b"),  # else the last one
        ("Session: a.b", "", "Doe_Jane", "PID1"),  # only an empty value fits: none
        ("MySession: x", "", "Doe_Jane", "PID1"),  # the name must stand alone
        ("first line\nSession: L2", "", "Doe_Jane", "L2"),
        ("Session: P", "Session: S", "Doe_Jane", "P"),  # patient comments first
    ],
)
def test_defaults_read_assignments_in_comments_first(
    patient_comments: str, study_comments: str, subject: str, session: str
) -> None:
    [result] = assign(
        [study("1.1", patient_comments=patient_comments, study_comments=study_comments)],
        Naming(),
    )
    assert isinstance(result, Labelled)
    assert (result.subject, result.session) == (subject, session)


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("Doe^Jane", "Doe_Jane"),
        ("a.b c", "a_b_c"),
        ("ok-_09", "ok-_09"),
        ("Zoë", "Zo_"),  # \w in Java is ASCII only
        ("x\U0001f600y", "x__y"),  # one character, two UTF-16 code units
    ],
)
def test_values_are_made_safe_as_xnat_does(value: str, safe: str) -> None:
    assert xnat_safe(value) == safe
    if len(value) == len(safe):  # the emulator's cleaning agrees where no surrogates arise
        assert clean_label(value) == safe


def test_templates_render_tags_and_literals() -> None:
    naming = Naming(
        subject=parse_template("sub-{PatientID}"),
        session=parse_template("{PatientID}_{StudyDate}_{Modality}"),
    )
    [result] = assign([study("1.1", patient_id="P^9", modality="MR")], naming)
    assert labels([result]) == [("1.1", "sub-P_9", "P_9_20240102_MR")]


def test_fixed_values() -> None:
    naming = Naming(subject=fixed("SUBJ-1"), session=parse_template("visit1"))
    assert labels(assign([study("1.1")], naming)) == [("1.1", "SUBJ-1", "visit1")]
    with pytest.raises(UsageError, match="not an XNAT label"):
        fixed("has space", what="--subject")
    with pytest.raises(UsageError, match="not an XNAT label"):
        fixed("")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{PatientId}", "unknown DICOM tag {PatientId}"),
        ("{PatientID}_{Rows}", "unknown DICOM tag {Rows}"),
        ("{PatientID:>8}", "no format"),
        ("{PatientID!r}", "no format"),
        ("{PatientID", "bad template"),
        ("a b{PatientID}", "XNAT labels allow only"),
        ("", "empty template"),
    ],
)
def test_bad_templates_are_usage_errors_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_template(text, what="--session-label")


def test_an_empty_label_fails_that_study_only() -> None:
    studies = [study("1.1", patient_id=""), study("1.2", patient_id="P2")]
    result = assign(studies, Naming())
    assert isinstance(result[0], LabelFailure)
    assert "session label 'Session: in the comments, else {PatientID}' is empty" in (
        result[0].reason
    )
    assert labels(result[1:]) == [("1.2", "Doe_Jane", "P2")]
    naming = Naming(session=parse_template("{AccessionNumber}{StudyDescription}"))
    [only] = assign([study("1.3")], naming)
    assert isinstance(only, LabelFailure)


def test_equal_session_labels_get_suffixes_by_study_uid_never_merged() -> None:
    studies = [
        study("1.3", patient_id="P1"),
        study("1.1", patient_id="P1"),
        study("1.2", patient_id="p1"),  # equal ignoring case
        study("1.4", patient_id="P1_2"),  # another study's natural label: never given away
        study("1.5", patient_id="P1", patient_name="Other^One"),  # other subject, same label
    ]
    expected = [
        ("1.1", "Doe_Jane", "P1"),
        ("1.2", "Doe_Jane", "p1_3"),
        ("1.3", "Doe_Jane", "P1_4"),
        ("1.4", "Doe_Jane", "P1_2"),
        ("1.5", "Other_One", "P1_5"),
    ]
    shuffle = random.Random(9).shuffle
    for _ in range(5):  # whatever order the studies come in
        shuffle(studies)
        result = assign(studies, Naming())
        assert labels(result) == expected
    assert [r.suffix for r in result if isinstance(r, Labelled)] == [1, 3, 4, 1, 5]
    assert len({r.session.casefold() for r in result if isinstance(r, Labelled)}) == 5
