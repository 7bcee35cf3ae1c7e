"""Cohorts from XNAT searches: ``--search ID`` (a stored search) and ``--search-xml FILE`` (a
search document) select the experiments the server's own query returns.

Each search runs once, before listing, as the run's user (results follow the user's rights);
its experiment IDs become ``Selection.search_ids``, intersected with every other selection flag
(and with each other search). A stored search is fetched as its document, checked like a file's
(its root must be an experiment type), then run as one: a stored search's cached results are
never what a pull mirrors.
"""

from __future__ import annotations

import dataclasses

from xnatsync.errors import NotFoundError
from xnatsync.events import Notice, Reporter
from xnatsync.pull.options import PullOptions
from xnatsync.xnat.client import XnatClient
from xnatsync.xnat.search import (
    SearchDocument,
    SearchError,
    SearchSource,
    experiment_ids,
    read_document,
)


async def document_of(client: XnatClient, source: SearchSource) -> SearchDocument:
    if source.document is not None:
        return source.document
    what = source.describe()
    try:
        xml = await client.saved_search(source.search_id)
    except NotFoundError:
        raise SearchError(
            f"{what}: no stored search {source.search_id!r} on {client.base_url}, or not one "
            "this user may run (XNAT answers 404 for both)"
        ) from None
    return read_document(xml, what)


async def searched(client: XnatClient, options: PullOptions, reporter: Reporter) -> PullOptions:
    """``options`` whose selection keeps only experiments every search returned (and no
    searches left to run)."""
    if not options.searches:
        return options
    chosen: frozenset[str] | None = None
    for source in options.searches:
        document = await document_of(client, source)
        ids = experiment_ids(await client.search(document.xml), document.source)
        reporter.emit(Notice(f"{document.source}: {len(ids)} experiments ({document.root})"))
        chosen = ids if chosen is None else chosen & ids
    selection = dataclasses.replace(options.selection, search_ids=chosen)
    return dataclasses.replace(options, selection=selection, searches=())
