"""XNAT search documents and their results, as values (xnat-api §6.1). Pure: no I/O.

A search document is an ``xdat:bundle`` whose ``xdat:root_element_name`` names the data type
searched; a pull selects experiments with it, so the root must be an experiment type (not a
project, subject, scan or resource type). Each result row of an experiment search carries the
experiment's accession ID (``session_id``; ``expt_id`` or ``id`` for some types).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xnatsync.errors import UsageError

# data types a search may be rooted at that are not experiments (xnat-api §3.3.1, §6.1)
_NOT_EXPERIMENTS = frozenset(
    {"xnat:projectdata", "xnat:subjectdata", "xnat:abstractresource", "xnat:resourcecatalog",
     "xnat:resource", "xnat:abstractsubjectmetadata", "xdat:user", "wrk:workflowdata",
     "arc:project", "xnat:investigatordata"}
)  # fmt: skip
_ID_KEYS = ("session_id", "expt_id", "id")


class SearchError(UsageError):
    """A search that cannot select experiments: malformed, of another type, or unknown."""


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """An ``xdat:bundle`` as sent to ``POST /data/search``, with its root type."""

    xml: bytes
    root: str
    source: str  # where it came from, for messages: a file name or "stored search ID"


@dataclass(frozen=True, slots=True)
class SearchSource:
    """One search to select by: a stored search's ID, or a document already read and checked."""

    search_id: str = ""
    document: SearchDocument | None = None

    def describe(self) -> str:
        return self.document.source if self.document is not None else f"--search {self.search_id}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_document(xml: bytes, source: str) -> SearchDocument:
    """Parse and check a search document; ``SearchError`` naming ``source`` if it is not
    well-formed XML, not a search (no root element name), or not rooted at an experiment."""
    from xml.etree import ElementTree  # here: every pull imports this module, few parse XML

    try:
        top = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise SearchError(f"{source}: not well-formed XML ({exc})") from None
    names = [e.text or "" for e in top.iter() if _local(e.tag) == "root_element_name"]
    root = names[0].strip() if names else ""
    if _local(top.tag) != "bundle" or not root:
        raise SearchError(
            f"{source}: not an XNAT search document (an xdat:bundle with an xdat:root_element_name)"
        )
    check_experiment_root(root, source)
    return SearchDocument(xml, root, source)


def check_experiment_root(root: str, source: str) -> None:
    """``SearchError`` unless ``root`` can be an experiment type."""
    kind = root.lower()
    if ":" not in kind or kind in _NOT_EXPERIMENTS or kind.endswith("scandata"):
        raise SearchError(
            f"{source} searches {root}, not experiments: a pull selects experiments "
            "(e.g. xnat:mrSessionData, xnat:imageSessionData, xnat:subjectAssessorData)"
        )


def experiment_ids(rows: Iterable[Mapping[str, str]], source: str) -> frozenset[str]:
    """The accession IDs of an experiment search's result rows."""
    found: set[str] = set()
    for row in rows:
        lowered = {k.lower(): v for k, v in row.items()}
        key = next((k for k in _ID_KEYS if k in lowered), None)
        if key is None:
            raise SearchError(
                f"{source}: its results carry no experiment IDs (no session_id column): "
                f"columns {sorted(row)}"
            )
        if lowered[key]:
            found.add(lowered[key])
    return frozenset(found)
