"""Project and subject routes: list, get, PUT create/update/relabel, DELETE (§3.1, §3.2, §4.5,
§4.6, §11.9–§11.11).

Answers: project PUT 200 (409 when its ID, title, secondary ID or an alias equals, ignoring case,
any of another project's; 403 without edit rights);
subject PUT 201 + bare accession ID when created, 200 + ID when it existed; DELETEs 200.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from xnatsync.emulator.common import (
    add_data_route,
    can_edit,
    can_read,
    can_see,
    fail,
    halt,
    plain,
    result_set,
    store_of,
    user_of,
)
from xnatsync.emulator.records import Project
from xnatsync.emulator.render import (
    PROJECT_COLUMNS,
    SUBJECT_COLUMNS,
    project_item,
    project_row,
    simple_xml,
    subject_item,
    subject_row,
)
from xnatsync.emulator.resolve import project_of, resolve
from xnatsync.emulator.settings import User
from xnatsync.emulator.sharing import shared_through, unshare

SUBJECT_FIELDS = frozenset(
    [
        "group",
        "src",
        "dob",
        "yob",
        "age",
        "gender",
        "handedness",
        "ses",
        "education",
        "race",
        "ethnicity",
        "weight",
        "height",
    ]
)
ACCESSIBILITY = ("private", "protected", "public")


def object_answer(request: web.Request, item: dict[str, object], xml: str) -> web.Response:
    """A single object as JSON items (format=json) or XML (format=xml or no format)."""
    if request.query.get("format", "xml").lower() == "json":
        return web.json_response(item)
    return web.Response(text=xml, content_type="text/xml")


def _own_elements(xsi_type: str) -> frozenset[str]:
    """The elements (lower-case) whose XML paths set fields of a record of `xsi_type`: the type
    itself and XNAT's abstract types above it."""
    actual = xsi_type.lower()
    if actual.endswith("scandata"):
        above: tuple[str, ...] = ("xnat:imagescandata",)
    elif actual.endswith("sessiondata"):
        above = ("xnat:imagesessiondata", "xnat:subjectassessordata", "xnat:experimentdata")
    elif actual in ("xnat:subjectdata", "xnat:projectdata", "xnat:reconstructedimagedata"):
        above = ()
    else:  # an image assessor
        above = ("xnat:imageassessordata", "xnat:deriveddata", "xnat:experimentdata")
    return frozenset((actual, *above))


def fields_from(request: web.Request, names: frozenset[str], xsi_type: str) -> dict[str, str]:
    """Query parameters that set fields of a record of `xsi_type`: by shortcut, or by an XML
    path of the record's own element or one above it (last segment). An XML path of another
    data type's element (`xnat:ctScanData/note` on an MR scan) is ignored, not an error (RT
    TestScans.testImplicitScanTypeChangeValidation: 200, nothing changes)."""
    own = _own_elements(xsi_type)
    out = {}
    for key, value in request.query.items():
        element, _, name = key.rpartition("/")
        if element and element.split("/", 1)[0].lower() not in own:
            continue
        if name in names:
            out[name] = value
    return out


# XNAT's actions of `permissions=` (ACTIVATE, CREATE, DELETE, EDIT, READ), and who may do each
def _can_delete(user: User, project: Project) -> bool:
    return user.admin or project.members.get(user.username) == "Owners"


_ACTIONS: dict[str, Callable[[User, Project], bool]] = {
    "active": can_edit, "create": can_edit, "edit": can_edit, "delete": _can_delete,
    "read": can_read,
}  # fmt: skip


async def list_projects(request: web.Request) -> web.Response:
    """GET /data/projects; with `permissions=ACTION&dataType=TYPE`, XNAT's permissions handler:
    rows `id`, `secondary_id` of the projects where the user may ACTION data (every project for
    an administrator), by `secondary_id`; another action is a 500 naming the allowed ones."""
    user = user_of(request)
    action = request.query.get("permissions")
    if action is not None:
        allowed = _ACTIONS.get(action)
        if allowed is None:
            raise halt(500, f"You must specify one of the following values for the permissions "
                            f"parameter: {', '.join(sorted(_ACTIONS))}")  # fmt: skip
        projects = [p for p in store_of(request).projects.values() if allowed(user, p)]
        permitted = [{"id": p.id, "secondary_id": p.secondary_id} for p in projects]
        permitted.sort(key=lambda row: row["secondary_id"])
        return result_set(request, permitted, default_columns=["id", "secondary_id"])
    rows = [project_row(p) for p in store_of(request).projects.values() if can_see(user, p)]
    return result_set(request, rows, default_columns=PROJECT_COLUMNS)


async def get_project(request: web.Request) -> web.Response:
    """GET /data/projects/{P}."""
    project = project_of(request)
    row = {k: v for k, v in project_row(project).items() if k != "URI"}
    return object_answer(request, project_item(project), simple_xml("xnat:Project", row))


def _identities(project: Project) -> set[str]:
    """What names a project, lower-cased: its ID, title, secondary ID and aliases."""
    names = [project.id, project.name, project.secondary_id, *project.aliases]
    return {n.lower() for n in names if n}


def _clash(projects: list[Project], itself: Project | None, wanted: list[str]) -> bool:
    """Whether any wanted ID/title/secondary ID/alias names another project, ignoring case
    (RT TestProjectValidation: all sixteen crossings of ID, title, secondary ID and alias)."""
    taken = set().union(*(_identities(p) for p in projects if p is not itself))
    return any(w.lower() in taken for w in wanted if w)


async def put_project(request: web.Request) -> web.Response:
    """PUT /data/projects/{P}?name=&secondary_ID=&accessibility=&description=&alias=.

    The URL names an existing project only by its exact ID; any other key (an alias, the ID in
    another case) asks for a new project with that ID, which then clashes (409). A user who may
    not edit an existing project → 403 (409 if they cannot see it). Any ID, title, secondary ID
    or alias equal (ignoring case) to one of another project's → 409 "Requested new project
    conflicts…" (XNAT's ProjectResource.handlePut → validateProjectFields → 409).
    """
    store, user = store_of(request), user_of(request)
    key, query = request.match_info["project"], request.query
    project = store.projects.get(key)
    name, secondary = query.get("name", ""), query.get("secondary_ID", "")
    aliases = [a for a in query.get("alias", "").split(",") if a]
    if project is not None and not can_edit(user, project):
        # a project the user cannot even see is, to XNAT, a new project whose ID clashes
        fail(403 if can_see(user, project) else 409, "Requested new project conflicts")
    wanted = [project.id if project else key, name, secondary, *aliases]
    if _clash(list(store.projects.values()), project, wanted):
        fail(409, "Requested new project conflicts with existing projects")
    access = query.get("accessibility", "")
    if access and access not in ACCESSIBILITY:
        fail(400, f"Invalid accessibility {access}")
    if project is None:
        project = store.create_project(key, name, secondary, access or "private", user.username)
    else:
        project.name = name or project.name
        project.secondary_id = secondary or project.secondary_id
        project.accessibility = access or project.accessibility
    project.description = query.get("description", project.description)
    for alias in aliases:
        if alias.lower() not in _identities(project):
            store.add_alias(project, alias)
    store.dirty = True
    return plain("")


async def put_project_setting(request: web.Request) -> web.Response:
    """PUT /data/projects/{P}/accessibility/{a} and …/prearchive_code/{code}."""
    project = project_of(request, write=True)
    setting, value = request.match_info["setting"], request.match_info["value"]
    if setting == "accessibility" and value in ACCESSIBILITY:
        project.accessibility = value
    elif setting == "prearchive_code" and value in ("0", "4", "5", "10", "11"):
        project.prearchive_code = int(value)
    else:
        fail(400, f"Invalid {setting} {value}")
    store_of(request).dirty = True
    return plain("")


async def delete_project(request: web.Request) -> web.Response:
    """DELETE /data/projects/{P}."""
    project = project_of(request, write=True)
    store_of(request).delete_project(project)
    return plain("")


async def list_subjects(request: web.Request) -> web.Response:
    """GET /data/projects/{P}/subjects and /data/subjects."""
    store, user = store_of(request), user_of(request)
    if "project" in request.match_info:
        project = resolve(request).project
        rows = [subject_row(s, project.id) for s in store.subjects_in(project)]
    else:
        readable = {p.id for p in store.projects.values() if can_read(user, p)}
        rows = [subject_row(s) for s in store.subjects.values() if s.project in readable]
    return result_set(request, rows, title="Project Subjects", default_columns=SUBJECT_COLUMNS)


async def get_subject(request: web.Request) -> web.Response:
    """GET …/subjects/{S}."""
    subject = resolve(request).subject
    assert subject is not None
    store = store_of(request)
    experiments = [store.experiments[e] for e in subject.experiments]
    row = {"ID": subject.id, "label": subject.label, "project": subject.project}
    return object_answer(
        request, subject_item(subject, experiments), simple_xml("xnat:Subject", row)
    )


async def put_subject(request: web.Request) -> web.Response:
    """PUT /data/projects/{P}/subjects/{S}[?label=NEW&gender=…]: 201/200 + accession ID."""
    store, user = store_of(request), user_of(request)
    project = store.project(request.match_info["project"])
    if project is None:
        fail(404, f"Unable to identify project {request.match_info['project']}")
    key = request.match_info["subject"]
    existing = store.subject(project.id, key)
    if existing is not None:
        resolve(request, write=True)
    elif not can_edit(user, project):
        fail(403, "Specified user account has insufficient create privileges for subjects.")
    subject, created = store.ensure_subject(project.id, key, user.username)
    new_label = request.query.get("label")
    if new_label and new_label != subject.label:
        try:
            store.relabel(subject, new_label)
        except ValueError:
            fail(409, f"Subject label {new_label} already exists in project {project.id}")
    subject.fields.update(fields_from(request, SUBJECT_FIELDS, "xnat:subjectData"))
    store.dirty = True
    return plain(subject.id, 201 if created else 200)


async def delete_subject(request: web.Request) -> web.Response:
    """DELETE …/subjects/{S} (through a project it is only shared into: unshare it)."""
    shared = shared_through(request)
    if shared is not None:
        return unshare(request, *shared)
    subject = resolve(request, write=True).subject
    assert subject is not None
    store_of(request).delete_subject(subject)
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register project and subject routes."""
    add_data_route(app, "GET", "/projects", list_projects)
    add_data_route(app, "GET", "/projects/{project}", get_project)
    add_data_route(app, "PUT", "/projects/{project}", put_project)
    add_data_route(app, "POST", "/projects/{project}", put_project)
    add_data_route(app, "DELETE", "/projects/{project}", delete_project)
    setting = "/projects/{project}/{setting:accessibility|prearchive_code}/{value}"
    add_data_route(app, "PUT", setting, put_project_setting)
    add_data_route(app, "GET", "/projects/{project}/subjects", list_subjects)
    add_data_route(app, "GET", "/subjects", list_subjects)
    for path in ("/projects/{project}/subjects/{subject}", "/subjects/{subject}"):
        add_data_route(app, "GET", path, get_subject)
        add_data_route(app, "DELETE", path, delete_subject)
    add_data_route(app, "PUT", "/projects/{project}/subjects/{subject}", put_subject)
