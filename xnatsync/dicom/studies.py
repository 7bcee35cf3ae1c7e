"""Group discovered instances into studies (one XNAT session per StudyInstanceUID), order
their series, drop duplicate instances, and split a big study into parts at series boundaries.

Pure: plain functions over ``Instance`` values.

Rules:
* One ``Study`` per StudyInstanceUID, whatever folders its files came from; a folder holding
  several studies is split. Studies are ordered by StudyInstanceUID (string order), so every
  later step (labels, suffixes) is deterministic across runs.
* An instance without StudyInstanceUID belongs to no study, and one without SOPInstanceUID
  or SOPClassUID would make XNAT refuse the whole zip ("object … contains no SOP Instance
  UID", a 400 in ``GradualDicomImporter``): each is listed in ``Grouping.rejected`` (path and
  reason, by path) and sent nowhere.
* A SOPInstanceUID seen more than once in one study (the same instance copied twice) is sent
  once: the copy whose path comes first in ``Path`` order (component by component) is kept;
  each other copy is listed once in ``Grouping.duplicates`` with the kept path.
* Series are keyed by (SeriesNumber, SeriesInstanceUID) and ordered by SeriesNumber (numerically
  when it is an integer, integers first), then SeriesNumber as text, then SeriesInstanceUID.
  Instances within a series are ordered by InstanceNumber the same way, then by path.
* ``split`` cuts a study into parts whose file bytes stay within a budget, at scan
  boundaries: a scan is every series sharing one SeriesNumber (XNAT's scan ID; a series
  without a number is a scan of its own), and it is never cut. A scan larger than the budget
  is a part of its own. Parts keep the series order, and their union is the study.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xnatsync.dicom.instance import Instance


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a study: its instances in InstanceNumber order."""

    number: str  # SeriesNumber, "" when absent
    uid: str  # SeriesInstanceUID, "" when absent
    instances: tuple[Instance, ...]

    @property
    def size(self) -> int:
        return sum(instance.size for instance in self.instances)


@dataclass(frozen=True, slots=True)
class Study:
    """One study (one XNAT session): its series in order."""

    uid: str
    series: tuple[Series, ...]

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(instance for series in self.series for instance in series.instances)

    @property
    def first(self) -> Instance:
        """The study's first instance (first series, first instance): labels read its tags."""
        return self.series[0].instances[0]

    @property
    def size(self) -> int:
        return sum(series.size for series in self.series)

    @property
    def count(self) -> int:
        return sum(len(series.instances) for series in self.series)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A second copy of an instance already in its study: not sent."""

    study_uid: str
    sop_uid: str
    kept: Path
    dropped: Path


@dataclass(frozen=True, slots=True)
class Rejected:
    """An instance that cannot be sent, and why."""

    path: Path
    reason: str


NO_STUDY = "no StudyInstanceUID"
NO_SOP_INSTANCE = "no SOPInstanceUID (XNAT refuses the object)"
NO_SOP_CLASS = "no SOPClassUID (XNAT refuses the object)"


@dataclass(frozen=True, slots=True)
class Grouping:
    """What ``group`` made of a run's instances."""

    studies: tuple[Study, ...]  # by StudyInstanceUID
    duplicates: tuple[Duplicate, ...]  # by study, then SOPInstanceUID, then dropped path
    rejected: tuple[Rejected, ...]  # by path


def number_key(text: str) -> tuple[int, int, str]:
    """Sort key of an IS value: integers first, numerically, then other text."""
    try:
        return (0, int(text), "")
    except ValueError:
        return (1, 0, text)


def group(instances: Iterable[Instance]) -> Grouping:
    """Group instances into studies by the module's rules."""
    by_study: dict[str, list[Instance]] = {}
    rejected: list[Rejected] = []
    for instance in instances:
        reason = _reject_reason(instance)
        if reason:
            rejected.append(Rejected(instance.path, reason))
        else:
            by_study.setdefault(instance.study_uid, []).append(instance)
    studies: list[Study] = []
    duplicates: list[Duplicate] = []
    for uid in sorted(by_study):
        kept, dropped = _dedupe(uid, by_study[uid])
        studies.append(Study(uid=uid, series=_series_of(kept)))
        duplicates.extend(dropped)
    rejected.sort(key=lambda r: r.path)
    return Grouping(tuple(studies), tuple(duplicates), tuple(rejected))


def _reject_reason(instance: Instance) -> str:
    if not instance.study_uid:
        return NO_STUDY
    if not instance.sop_uid:
        return NO_SOP_INSTANCE
    return "" if instance.sop_class_uid else NO_SOP_CLASS


def _dedupe(study_uid: str, instances: list[Instance]) -> tuple[list[Instance], list[Duplicate]]:
    kept: list[Instance] = []
    first_of: dict[str, Instance] = {}
    dropped: list[Duplicate] = []
    for instance in sorted(instances, key=lambda i: (i.sop_uid, i.path)):
        first = first_of.get(instance.sop_uid)
        if first is None:
            first_of[instance.sop_uid] = instance
            kept.append(instance)
        else:
            dropped.append(Duplicate(study_uid, instance.sop_uid, first.path, instance.path))
    return kept, dropped


def _series_of(instances: list[Instance]) -> tuple[Series, ...]:
    by_series: dict[tuple[str, str], list[Instance]] = {}
    for instance in instances:
        by_series.setdefault((instance.series_number, instance.series_uid), []).append(instance)
    ordered = sorted(by_series, key=lambda key: (number_key(key[0]), key[1]))
    return tuple(
        Series(
            number=number,
            uid=uid,
            instances=tuple(
                sorted(
                    by_series[(number, uid)],
                    key=lambda i: (number_key(i.instance_number), i.path),
                )
            ),
        )
        for number, uid in ordered
    )


def scans(study: Study) -> list[tuple[Series, ...]]:
    """The study's series grouped by scan (SeriesNumber; a series without one alone)."""
    units: list[list[Series]] = []
    for series in study.series:
        if units and series.number and units[-1][-1].number == series.number:
            units[-1].append(series)
        else:
            units.append([series])
    return [tuple(unit) for unit in units]


def split(study: Study, budget: int) -> list[tuple[Series, ...]]:
    """Parts of ``study`` of at most ``budget`` file bytes each, cut between scans."""
    if budget < 1:
        raise ValueError(f"a part's byte budget must be positive, not {budget}")
    parts: list[list[Series]] = []
    size = 0
    for unit in scans(study):
        unit_size = sum(series.size for series in unit)
        if not parts or size + unit_size > budget:
            parts.append([])
            size = 0
        parts[-1].extend(unit)
        size += unit_size
    return [tuple(part) for part in parts]


def part_instances(part: Sequence[Series]) -> list[Instance]:
    """The instances of a part, in series then instance order."""
    return [instance for series in part for instance in series.instances]
