"""JSON form of the emulator's records: `dump(store)` and `load_into(store, data)`.

The document nests the archive as XNAT does (projects hold subjects and experiments, experiments
hold scans, assessors and reconstructions, owners hold resources (assessors and reconstructions
also `inputs`, their IN resources), resources hold file entries); the store's indexes
are rebuilt from it on load. Documents written before assessors or reconstructions existed load
unchanged (no `assessors`/`reconstructions` key, no `assessor`/`reconstruction` field on
resources), and so do documents written before stored searches were kept (no
`saved_searches` key).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from xnatsync.emulator.records import (
    Assessor,
    Experiment,
    FileEntry,
    Project,
    Reconstruction,
    Resource,
    Scan,
    Subject,
)
from xnatsync.emulator.stored_search import StoredSearch

VERSION = 1
_Child = TypeVar("_Child", Scan, Assessor)


class Store(Protocol):
    """What persistence reads and fills of the archive (``store.Store`` has it): the records
    and counters, and the rebuilding of indexes after a load."""

    site_id: str
    counters: dict[str, int]
    projects: dict[str, Project]
    subjects: dict[str, Subject]
    experiments: dict[str, Experiment]
    resources: dict[int, Resource]
    saved_searches: dict[str, StoredSearch]
    dirty: bool

    def index(self) -> None: ...


def _flat(obj: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip}


def _resources(resources: dict[str, Resource]) -> list[dict[str, Any]]:
    out = []
    for resource in resources.values():
        row = _flat(resource, ("files",))
        row["files"] = [dataclasses.astuple(f) for f in resource.files.values()]
        out.append(row)
    return out


def _owners(owners: Iterable[Scan | Assessor]) -> list[dict[str, Any]]:
    """Scans or assessors of an experiment, each with its resources (assessors: and inputs)."""
    out = []
    for o in owners:
        row = _flat(o, ("resources", "inputs")) | {"resources": _resources(o.resources)}
        if isinstance(o, Assessor):
            row["inputs"] = _resources(o.inputs.resources)
        out.append(row)
    return out


def _recon(recon: Reconstruction) -> dict[str, Any]:
    return _flat(recon, ("resources", "inputs")) | {
        "resources": _resources(recon.resources),
        "inputs": _resources(recon.inputs.resources),
    }


def _load_recon(store: Store, row: dict[str, Any]) -> Reconstruction:
    resources = _load_resources(store, row.pop("resources"))
    inputs = _load_resources(store, row.pop("inputs", []))
    recon = Reconstruction(**row, resources=resources)
    recon.inputs.resources = inputs
    return recon


def dump(store: Store) -> dict[str, Any]:
    """The whole archive as JSON-ready data."""
    return {
        "version": VERSION,
        "site_id": store.site_id,
        "counters": store.counters,
        "projects": [
            _flat(p, ("subjects", "experiments", "resources"))
            | {"resources": _resources(p.resources)}
            for p in store.projects.values()
        ],
        "subjects": [
            _flat(s, ("resources",)) | {"resources": _resources(s.resources)}
            for s in store.subjects.values()
        ],
        "experiments": [
            _flat(e, ("scans", "resources", "assessors", "reconstructions"))
            | {
                "resources": _resources(e.resources),
                "scans": _owners(e.scans.values()),
                "assessors": _owners(e.assessors.values()),
                "reconstructions": [_recon(r) for r in e.reconstructions.values()],
            }
            for e in store.experiments.values()
        ],
        "saved_searches": [dataclasses.asdict(s) for s in store.saved_searches.values()],
    }


def _load_resources(store: Store, rows: list[dict[str, Any]]) -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for row in rows:
        files = {f[0]: FileEntry(*f) for f in row.pop("files")}
        resource = Resource(**row, files=files)
        store.resources[resource.id] = resource
        out[resource.label] = resource
    return out


def _load_owners(store: Store, rows: list[dict[str, Any]], kind: type[_Child]) -> dict[str, _Child]:
    out: dict[str, _Child] = {}
    for row in rows:
        resources = _load_resources(store, row.pop("resources"))
        inputs = _load_resources(store, row.pop("inputs", []))
        record = kind(**row, resources=resources)
        if isinstance(record, Assessor):
            record.inputs.resources = inputs
        out[row["id"]] = record
    return out


def load_into(store: Store, data: dict[str, Any]) -> None:
    """Replace the store's records with those of a `dump` document and rebuild indexes."""
    store.counters.update(data["counters"])
    for row in data["projects"]:
        resources = _load_resources(store, row.pop("resources"))
        store.projects[row["id"]] = Project(**row, resources=resources)
    for row in data["subjects"]:
        resources = _load_resources(store, row.pop("resources"))
        subject = Subject(**row, resources=resources)
        store.subjects[subject.id] = subject
        store.projects[subject.project].subjects.append(subject.id)
    for row in data["experiments"]:
        resources = _load_resources(store, row.pop("resources"))
        scans = _load_owners(store, row.pop("scans"), Scan)
        assessors = _load_owners(store, row.pop("assessors", []), Assessor)
        recons = [_load_recon(store, r) for r in row.pop("reconstructions", [])]
        experiment = Experiment(**row, scans=scans, resources=resources, assessors=assessors)
        experiment.reconstructions = {r.id: r for r in recons}
        store.experiments[experiment.id] = experiment
        store.projects[experiment.project].experiments.append(experiment.id)
    for row in data.get("saved_searches", []):
        store.saved_searches[row["id"]] = StoredSearch(**row)
    store.index()
    store.dirty = False
