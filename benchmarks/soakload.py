"""The soak's arrivals: which instance of which study arrives when and how (pure schedule,
seeded), and the two kinds of sender that play it (a DICOM C-STORE SCU, a writer into the
spool). Each sender runs in its own thread and waits for each instance's time to come: this is
load, timed on purpose, not synchronisation.

A study arrives series by series, in bursts: after half of its series comes a pause of 8-25 s,
longer than the daemon's quiet period, so the study is sent in parts (the later ones appended to
the session the first made). A file-borne instance is written to a hidden temp
beside its place and renamed (as a well-behaved exporter does), or, for ``SLOW_SHARE`` of
them, written in place in 3-4 chunks 0.2-0.8 s apart (as a plain copy over a slow share does;
the daemon must wait until its size stops changing, ``--settle-seconds`` 2).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]

from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance

SERIES = 4
STUDY_DATE = "20240102"
PAUSE_SHARE = 0.5  # a pause after a series, longer than the quiet period
SLOW_SHARE = 0.15  # file-borne instances written slowly in place
CALLING_AE = "SOAKSCU"
CALLED_AE = "XNATSYNC"
STORE_TRIES = 5  # a refused C-STORE (0xA700) is sent again, as a PACS does


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the arrivals began
    series: int
    number: int
    slow: bool = False


@dataclass(frozen=True)
class StudyPlan:
    key: str  # PatientID, and the key the UIDs derive from
    by_cstore: bool
    parts: tuple[tuple[Arrival, ...], ...]  # bursts: one association each, by C-STORE

    @property
    def session(self) -> str:
        return f"{self.key}_{STUDY_DATE}"

    @property
    def count(self) -> int:
        return sum(len(part) for part in self.parts)

    def spec(self, arrival: Arrival) -> InstanceSpec:
        return InstanceSpec(patient_id=self.key, patient_name=f"Soak^{self.key}",
                            study_key=self.key, series_number=arrival.series,
                            series_description=f"series {arrival.series}",
                            instance_number=arrival.number, study_date=STUDY_DATE)  # fmt: skip


def schedule(studies: int, instances: int, window: float, seed: int) -> list[StudyPlan]:
    """``studies`` studies of ``instances`` instances in ``SERIES`` series, every second one by
    C-STORE, each starting in the first 60 % of ``window`` seconds. A series takes 4-12 s; the
    next one follows at once (under a second) or, half the time, after a pause of 8-25 s, well
    past the quiet period: the study is sent, and the rest is appended to its session."""
    rng = random.Random(seed)
    plans = []
    per_series = -(-instances // SERIES)
    for index in range(studies):
        by_cstore = index % 2 == 0
        at = rng.uniform(0, window * 0.6)
        parts: list[list[Arrival]] = [[]]
        for series in range(1, SERIES + 1):
            numbers = range((series - 1) * per_series + 1, min(series * per_series, instances) + 1)
            length = rng.uniform(4, 12)
            times = sorted(at + rng.uniform(0, length) for _ in numbers)
            parts[-1].extend(Arrival(t, series, n, slow=not by_cstore and rng.random() < SLOW_SHARE)
                             for t, n in zip(times, numbers, strict=True))  # fmt: skip
            at += length
            if rng.random() < PAUSE_SHARE:
                at += rng.uniform(8, 25)
                parts.append([])
            else:
                at += rng.uniform(0, 1)
        bursts = tuple(tuple(part) for part in parts if part)
        plans.append(StudyPlan(f"SOAK{index + 1:02d}", by_cstore, bursts))
    return plans


@dataclass
class Tally:
    """What the senders did (each thread adds to its own; summed at the end)."""

    stored: int = 0
    refused: int = 0  # C-STORE answers other than Success, each sent again
    associations: int = 0
    renamed: int = 0
    slow: int = 0
    errors: list[str] = field(default_factory=list)


def _wait_until(start: float, at: float) -> None:
    delay = start + at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def send_by_cstore(plan: StudyPlan, source: Path, port: int, start: float, tally: Tally) -> None:
    """Each part on an association of its own, each instance at its time."""
    for part in plan.parts:
        _wait_until(start, part[0].at)
        assoc = _associate(port, tally)
        try:
            for arrival in part:
                _wait_until(start, arrival.at)
                assoc = _store(assoc, port, source / plan.key / f"{arrival.number}.dcm", tally)
        finally:
            if assoc.is_established:
                assoc.release()


def _associate(port: int, tally: Tally) -> Association:
    ae = AE(ae_title=CALLING_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(MRImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    for _ in range(STORE_TRIES):
        assoc = ae.associate("127.0.0.1", port, ae_title=CALLED_AE)
        if assoc.is_established:
            tally.associations += 1
            return assoc
        time.sleep(1.0)  # a sender's pause before it tries again
    raise RuntimeError(f"no association with 127.0.0.1:{port} after {STORE_TRIES} tries")


def _store(assoc: Association, port: int, path: Path, tally: Tally) -> Association:
    for _ in range(STORE_TRIES):
        if not assoc.is_established:
            assoc = _associate(port, tally)
        status = assoc.send_c_store(path)
        code = int(status.Status) if "Status" in status else -1
        if code == 0:
            tally.stored += 1
            return assoc
        tally.refused += 1
        time.sleep(1.0)
    tally.errors.append(f"{path.name}: not stored after {STORE_TRIES} tries")
    return assoc


def drop_files(plan: StudyPlan, spool: Path, start: float, tally: Tally, seed: int) -> None:
    """Each instance written into ``spool/KEY/sSERIES/`` at its time."""
    rng = random.Random(f"{seed}-{plan.key}")
    for part in plan.parts:
        for arrival in part:
            _wait_until(start, arrival.at)
            data = make_instance(plan.spec(arrival))
            target = spool / plan.key / f"s{arrival.series}" / f"IM{arrival.number:04d}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            if arrival.slow:
                _write_slowly(target, data, rng)
                tally.slow += 1
            else:
                temp = target.with_name(f".{target.name}.part")
                temp.write_bytes(data)
                temp.rename(target)
                tally.renamed += 1


def _write_slowly(target: Path, data: bytes, rng: random.Random) -> None:
    chunks = rng.randint(3, 4)
    step = -(-len(data) // chunks)
    with target.open("wb") as out:
        for offset in range(0, len(data), step):
            out.write(data[offset : offset + step])
            out.flush()
            if offset + step < len(data):
                time.sleep(rng.uniform(0.2, 0.8))


def write_sources(plans: list[StudyPlan], source: Path) -> None:
    """The C-STORE studies' instances as files the SCU sends (setup, before the clock runs)."""
    for plan in plans:
        if plan.by_cstore:
            folder = source / plan.key
            folder.mkdir(parents=True)
            for part in plan.parts:
                for arrival in part:
                    (folder / f"{arrival.number}.dcm").write_bytes(
                        make_instance(plan.spec(arrival))
                    )
