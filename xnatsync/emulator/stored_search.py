"""Stored searches (`xdat:stored_search`): the record, its `xdat:bundle` XML and its list row.

Pure: no aiohttp, no store. A stored search keeps the bundle document as sent (its `ID`
attribute and `xdat:allowed_user` logins rewritten to the stored ones) and the attributes XNAT
lists: `brief-description`, `description`, `secure`, `tag`, `allow-diff-columns`, root element.

Visibility in the list follows XNAT's query: a search shows to a user when it is not secure or
the user is one of its allowed users; by default only untagged searches are listed (project
searches carry the project as `tag`). [XW SavedSearchListResource]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree

from xnatsync.emulator.search import XDAT, parse_bundle

NAMESPACE = XDAT.strip("{}")
ElementTree.register_namespace("xdat", NAMESPACE)
_TRUE = ("true", "1")


@dataclass(slots=True)
class StoredSearch:
    """One stored search. `users` are the allowed users' logins, in order."""

    id: str
    document: str
    root: str
    brief_description: str = ""
    description: str = ""
    secure: bool = False
    tag: str = ""
    allow_diff_columns: bool = False
    users: list[str] = field(default_factory=list)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def from_document(document: bytes, search_id: str) -> StoredSearch:
    """A stored search called `search_id` from an `xdat:bundle`; BadSearch if it is not one."""
    bundle = parse_bundle(document)
    root = ElementTree.fromstring(document)
    users = [
        (login.text or "").strip()
        for login in root.iter(XDAT + "login")
        if (login.text or "").strip()
    ]
    search = StoredSearch(
        id=search_id,
        document="",
        root=bundle.root,
        brief_description=root.get("brief-description", ""),
        description=root.get("description", ""),
        secure=_flag(root.get("secure")),
        tag=root.get("tag", ""),
        allow_diff_columns=_flag(root.get("allow-diff-columns")),
        users=list(dict.fromkeys(users)),
    )
    search.document = document.decode("utf-8", "replace")
    return rewrite(search)


def rewrite(search: StoredSearch) -> StoredSearch:
    """Make the document carry the record's ID and allowed users (one `allowed_user` each)."""
    root = ElementTree.fromstring(search.document)
    root.set("ID", search.id)
    for node in root.findall(XDAT + "allowed_user"):
        root.remove(node)
    for login in search.users:
        node = ElementTree.SubElement(root, XDAT + "allowed_user")
        ElementTree.SubElement(node, XDAT + "login").text = login
    search.document = ElementTree.tostring(root, encoding="unicode")
    return search


def visible(search: StoredSearch, username: str, include_tag: str | None) -> bool:
    """Whether the list shows `search` to `username` (see the module docstring)."""
    if search.secure and username not in search.users:
        return False
    if include_tag is None:
        return not search.tag
    if include_tag.lower() == "true":
        return bool(search.tag)
    return search.tag == include_tag


def list_row(search: StoredSearch) -> dict[str, str]:
    """The row of `GET /data/search/saved` (columns of `xdat_stored_search`, `users` as an
    aggregated array)."""
    return {
        "id": search.id,
        "brief_description": search.brief_description,
        "description": search.description,
        "root_element_name": search.root,
        "sort_by_element_name": "",
        "sort_by_field_id": "",
        "allow_diff_columns": "1" if search.allow_diff_columns else "0",
        "secure": "1" if search.secure else "0",
        "tag": search.tag,
        "layered_sequence": "",
        "users": "{" + ",".join(search.users) + "}",
    }


def make_document(
    search_id: str,
    root: str,
    fields: Sequence[tuple[str, str, str, str]],
    criteria: Sequence[tuple[str, str, str]] = (),
    *,
    brief_description: str = "",
    secure: bool = False,
) -> str:
    """An `xdat:bundle`: `fields` as (element, field ID, header, type), `criteria` as
    (schema field, comparison, value) ANDed together."""
    bundle = ElementTree.Element(
        XDAT + "bundle",
        {
            "ID": search_id,
            "brief-description": brief_description,
            "allow-diff-columns": "0",
            "secure": "true" if secure else "false",
        },
    )
    ElementTree.SubElement(bundle, XDAT + "root_element_name").text = root
    for sequence, (element, field_id, header, kind) in enumerate(fields):
        node = ElementTree.SubElement(bundle, XDAT + "search_field")
        for tag, text in (
            ("element_name", element),
            ("field_ID", field_id),
            ("sequence", str(sequence)),
            ("type", kind),
            ("header", header),
        ):
            ElementTree.SubElement(node, XDAT + tag).text = text
    where = ElementTree.SubElement(bundle, XDAT + "search_where", {"method": "AND"})
    for schema_field, comparison, value in criteria:
        node = ElementTree.SubElement(where, XDAT + "criteria", {"override_value_formatting": "0"})
        for tag, text in (
            ("schema_field", schema_field),
            ("comparison_type", comparison),
            ("value", value),
        ):
            ElementTree.SubElement(node, XDAT + tag).text = text
    return ElementTree.tostring(bundle, encoding="unicode")


def default_document(root: str, fields: Sequence[tuple[str, str, str]]) -> str:
    """The listing search XNAT generates for `GET /data/search/saved/@{type}`: every display
    field of the type, no criteria."""
    columns = [(root, field_id, header, kind) for field_id, header, kind in fields]
    return make_document(f"@{root}", root, columns, brief_description=root)
