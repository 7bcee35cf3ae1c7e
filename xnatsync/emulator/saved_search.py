"""Stored searches at `/data/search/saved…` (§6.1), as XNAT's SavedSearchListResource and
SavedSearchResource answer them; records in `store.saved_searches` (persisted with the archive).

* `GET /search/saved?format=` lists the searches the caller may see (stored_search.visible);
  an admin may ask for another login's list with `user=` or for every search with `all=true`;
  `includeTag=true` lists tagged (project) searches, `includeTag={project}` that project's, an
  unknown project → 400.
* `GET /search/saved/{id}` → the `xdat:bundle` XML (text/xml only: another `format` → 404);
  `@{type}` is the generated listing search of a data type; unknown → 404. A caller who is
  neither an allowed user nor able to query the root type → 403.
* `GET /search/saved/{id}/results?format=json|csv|xml` runs it now for the caller (rows of
  readable projects only), unless the caller cached a search with this bundle ID and did not
  ask `refresh=true` (then the cached rows: XNAT reuses the materialized view); csv comes as
  an attachment `results.csv`.
* `PUT /search/saved/{id}` (body: a bundle; `inbody=true` as pyxnat sends it) → 200. The
  document's ID becomes `{id}`; the caller joins the allowed users of a new search; replacing a
  search whose document ID is `{id}` needs the caller among the document's allowed users (or
  edit rights on its tagged project) → else 403; `saveAs=true` picks a free ID (`_1` appended)
  and drops the allowed users; a new tagged search with an existing (tag, brief-description)
  replaces that search. Not a bundle → 422; a root type nobody may query → 403.
* `DELETE /search/saved/{id}` → 200: an allowed user is removed from a shared search, the last
  one removes it; an admin removes any; anyone else → 403; an unknown ID is a no-op.
"""

from __future__ import annotations

from aiohttp import web

from xnatsync.emulator import common, schema
from xnatsync.emulator.search import BadSearch, parse_bundle
from xnatsync.emulator.search_routes import answer, cache_of, execute, queryable, sort_rows
from xnatsync.emulator.stored_search import (
    StoredSearch,
    default_document,
    from_document,
    list_row,
    rewrite,
    visible,
)


async def list_saved(request: web.Request) -> web.Response:
    """GET /data/search/saved — the stored searches the caller (or `user=`, admins) may see."""
    user = common.user_of(request)
    store = common.store_of(request)
    login = user.username
    wanted = request.query.get("user", "")
    if user.admin and wanted:
        if wanted not in {u.username for u in common.config_of(request).users()}:
            common.fail(500, f"Unknown user: {wanted}")
        login = wanted
    include_tag = request.query.get("includeTag")
    if include_tag not in (None, "true") and store.project(include_tag or "") is None:
        common.fail(400, f"Unknown tag: {include_tag}")
    every = user.admin and common.flag(request, "all")
    rows = [
        list_row(s)
        for s in store.saved_searches.values()
        if every or visible(s, login, include_tag)
    ]
    return common.result_set(request, rows, title="Stored Searches")


def _lookup(request: web.Request) -> StoredSearch:
    """The stored search of the path (or the generated `@{type}` one); 404 / 403 as XNAT."""
    search_id = request.match_info["id"]
    if search_id.startswith("@"):
        xsi_type = schema.searchable(search_id[1:])
        if xsi_type is None:
            common.fail(404, f"Unknown data type: {search_id[1:]}")
        document = default_document(xsi_type, schema.FIELDS[xsi_type])
        return StoredSearch(search_id, document, xsi_type, brief_description=xsi_type)
    found = common.store_of(request).saved_searches.get(search_id)
    if found is None:
        common.fail(404, f"Stored search {search_id} not found")
    user = common.user_of(request)
    if user.username not in found.users and not queryable(found.root):
        common.fail(403, f"Unable to query {found.root}")
    return found


async def get_saved(request: web.Request) -> web.Response:
    """GET /data/search/saved/{id} — the search's `xdat:bundle` document."""
    search = _lookup(request)
    if request.query.get("format", "xml").lower() != "xml":
        common.fail(404, f"Stored search {search.id} is only served as XML")
    return web.Response(text=search.document, content_type="text/xml")


async def saved_results(request: web.Request) -> web.Response:
    """GET /data/search/saved/{id}/results — run the stored search for the caller."""
    search = _lookup(request)
    cache = cache_of(request)
    earlier = cache.by_search(common.user_of(request).username, search.id)
    if earlier is not None and (search.id.startswith("@") or common.flag(request, "refresh")):
        cache.drop(earlier)
        earlier = None
    if earlier is not None:
        columns, rows = earlier.columns, earlier.rows
    else:
        columns, rows = execute(request, parse_bundle(search.document.encode()))
    response = answer(request, columns, sort_rows(request, rows), {})
    if request.query.get("format", "json").lower() == "csv":
        response.headers["Content-Disposition"] = 'attachment; filename="results.csv"'
    return response


def _placed(
    store_searches: dict[str, StoredSearch], search: StoredSearch, document_id: str, save_as: bool
) -> bool:
    """Give `search` its final ID; whether it is new (see the module docstring)."""
    existing = store_searches.get(search.id)
    is_new = existing is None or document_id != search.id
    if existing is not None and not is_new and save_as:
        while search.id in store_searches:
            search.id += "_1"
        is_new = True
    if is_new and search.tag:
        twin = next(
            (
                s
                for s in store_searches.values()
                if s.tag == search.tag and s.brief_description == search.brief_description
            ),
            None,
        )
        if twin is not None:
            search.id, is_new = twin.id, False
    return is_new


async def put_saved(request: web.Request) -> web.Response:
    """PUT /data/search/saved/{id} — create or replace a stored search."""
    user = common.user_of(request)
    store = common.store_of(request)
    body = await request.read()
    try:
        document_id = parse_bundle(body).id
        search = from_document(body, request.match_info["id"])
    except BadSearch as exc:
        return common.error_page(422, str(exc))
    save_as = common.flag(request, "saveAs")
    is_new = _placed(store.saved_searches, search, document_id, save_as)
    if not queryable(search.root):
        common.fail(403, f"Unable to query {search.root}")
    if save_as:
        search.users = []
    if user.username not in search.users:
        project = store.project(search.tag) if search.tag else None
        if not is_new and (project is None or not common.can_edit(user, project)):
            common.fail(403, f"Not allowed to modify stored search {search.id}")
        search.users.append(user.username)
    store.saved_searches[search.id] = rewrite(search)
    store.dirty = True
    return common.plain("")


async def delete_saved(request: web.Request) -> web.Response:
    """DELETE /data/search/saved/{id} — leave or remove a stored search."""
    user = common.user_of(request)
    store = common.store_of(request)
    search = store.saved_searches.get(request.match_info["id"])
    if search is None:
        return common.plain("")
    if user.username in search.users and len(search.users) > 1:
        search.users.remove(user.username)
        rewrite(search)
    elif user.username in search.users or user.admin:
        del store.saved_searches[search.id]
    else:
        common.fail(403, f"Not allowed to remove stored search {search.id}")
    store.dirty = True
    return common.plain("")


def add_routes(app: web.Application) -> None:
    """Register /data/search/saved[/{id}[/results]] (before /data/search/{cache_id})."""
    common.add_data_route(app, "GET", "/search/saved", list_saved)
    common.add_data_route(app, "GET", "/search/saved/{id}", get_saved)
    common.add_data_route(app, "PUT", "/search/saved/{id}", put_saved)
    common.add_data_route(app, "DELETE", "/search/saved/{id}", delete_saved)
    common.add_data_route(app, "GET", "/search/saved/{id}/results", saved_results)
