"""The store's label indexes (xnat-api §1.4): which accession ID a label names in a project.

Subjects and experiments are addressed by label within a project: their own label in their
primary project, or the one a share gave them in a project they are shared into. Projects are
also addressed by alias, and know what is shared into them (`shared`). Each index is a dict,
kept in step by the store on every create, relabel, share and delete, and rebuilt from the
records after loading; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from xnatsync.emulator.records import Experiment, Project, Subject

Index = dict[tuple[str, str], str]  # (project ID, label) → accession ID
Shared = dict[str, dict[str, None]]  # project ID → accession IDs shared into it, in share order


class Labels:
    """Label and alias indexes of one store."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.subjects: Index = {}
        self.experiments: Index = {}
        self.shared_subjects: Shared = {}
        self.shared_experiments: Shared = {}

    def of(self, record: Subject | Experiment) -> Index:
        """The index a record's labels live in."""
        return self.subjects if isinstance(record, Subject) else self.experiments

    def shared(self, record: Subject | Experiment) -> Shared:
        """The per-project lists of shared records of the record's kind."""
        return self.shared_subjects if isinstance(record, Subject) else self.shared_experiments

    def add(self, record: Subject | Experiment) -> None:
        """Index a new record under its label in its primary project."""
        self.of(record)[(record.project, record.label)] = record.id

    def remove(self, record: Subject | Experiment) -> None:
        """Forget every label of a record that is going away (its shares go with it)."""
        self.of(record).pop((record.project, record.label), None)
        for project_id in list(record.shares):
            self.unshare(record, project_id)

    def relabel(self, record: Subject | Experiment, label: str) -> None:
        """Give a record a new label in its primary project (`ValueError` if it is taken)."""
        index = self.of(record)
        if index.get((record.project, label), record.id) != record.id:
            raise ValueError(f"label {label} exists in project {record.project}")
        index.pop((record.project, record.label), None)
        record.label = label
        index[(record.project, label)] = record.id

    def share(self, record: Subject | Experiment, project: Project, label: str = "") -> None:
        """Share a record into `project` under `label` (its own by default).

        `ValueError` (XNAT answers 409) if it is already in that project or the label is taken
        there by another record of its kind.
        """
        if record.belongs_to(project.id):
            raise ValueError(f"Already assigned to project:{project.id}")
        label = label or record.label
        index = self.of(record)
        if index.get((project.id, label), record.id) != record.id:
            raise ValueError(f"Label already in use:{label}")
        self._index_share(record, project.id, label)

    def unshare(self, record: Subject | Experiment, project_id: str) -> None:
        """Take a record out of a project it is shared into (`KeyError` if it is not)."""
        label = record.shares.pop(project_id)
        self.of(record).pop((project_id, label), None)
        self.shared(record).get(project_id, {}).pop(record.id, None)

    def _index_share(self, record: Subject | Experiment, project_id: str, label: str) -> None:
        record.shares[project_id] = label
        self.of(record)[(project_id, label)] = record.id
        self.shared(record).setdefault(project_id, {})[record.id] = None

    def rebuild(self, projects: Iterable[Project], records: Iterable[Subject | Experiment]) -> None:
        """Index everything anew (after loading)."""
        self.aliases = {a: p.id for p in projects for a in p.aliases}
        self.subjects, self.experiments = {}, {}
        self.shared_subjects, self.shared_experiments = {}, {}
        for record in records:
            self.add(record)
            for project_id, label in list(record.shares.items()):
                self._index_share(record, project_id, label)
