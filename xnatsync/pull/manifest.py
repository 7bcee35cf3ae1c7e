"""Sorted manifests of one owner: the remote side (XNAT listings) and the local side (journal).

An *owner* is what a resource hangs on: an experiment (with its scans, assessors and
reconstructions), a subject, or a project. The engine works one owner at a time, so memory
follows the largest experiment, never the archive.

Invariant: both manifests are sorted by ``RemoteFile.key`` order, which ``diff`` requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from xnatsync.model import Experiment, LocalFile, RemoteFile
from xnatsync.pull.selection import Selection


class Listing(Protocol):
    """One owner's listings: a fingerprint of the response bytes, and the files they list."""

    @property
    def fingerprint(self) -> str: ...

    def files(self) -> list[RemoteFile]: ...


class Lister(Protocol):
    """The listing calls the engine makes (``XnatClient`` satisfies it)."""

    async def list_experiments(self, project: str) -> list[Experiment]: ...

    async def list_subjects(self, project: str) -> list[dict[str, str]]: ...

    async def experiment_listing(self, project: str, experiment: Experiment) -> Listing: ...

    async def project_listing(self, project: str) -> Listing: ...

    async def subject_listing(
        self, project: str, subject_id: str, subject_label: str
    ) -> Listing: ...


class LocalState(Protocol):
    """The journal's read side (``Journal`` satisfies it; a dry run may use ``NoJournal``)."""

    def entries_for_owner(self, project: str, owner: str, dest: Path) -> list[LocalFile]: ...


class NoJournal:
    """The local side of a destination that has never been synced."""

    def entries_for_owner(self, project: str, owner: str, dest: Path) -> list[LocalFile]:
        return []


@dataclass(frozen=True, slots=True)
class Owner:
    """One unit of listing and planning."""

    project: str
    id: str
    label: str
    experiment: Experiment | None = None

    @property
    def kind(self) -> str:
        if self.experiment is not None:
            return "experiment"
        return "subject" if self.id else "project"

    def describe(self) -> str:
        return f"{self.project}/{self.label}" if self.label else f"project {self.project}"


async def remote_listing(lister: Lister, owner: Owner) -> Listing:
    """What the server lists for ``owner`` (not parsed yet: see ``remote_manifest``)."""
    if owner.experiment is not None:
        return await lister.experiment_listing(owner.project, owner.experiment)
    if owner.id:
        return await lister.subject_listing(owner.project, owner.id, owner.label)
    return await lister.project_listing(owner.project)


def remote_manifest(listing: Listing) -> list[RemoteFile]:
    """Every file of a listing, sorted by key (unfiltered)."""
    return sorted(listing.files(), key=lambda f: f.key)


def selected(files: Sequence[RemoteFile], selection: Selection) -> list[RemoteFile]:
    return [f for f in files if selection.wants_file(f)]


def local_manifest(state: LocalState, dest: Path, owner: Owner) -> list[LocalFile]:
    """The journal's rows for ``owner`` with one lstat each, sorted by key."""
    return state.entries_for_owner(owner.project, owner.id, dest)
