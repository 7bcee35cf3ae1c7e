"""Rows and documents the emulator answers with: ResultSet rows (every cell a string) and the
single-object `{"items":[{"meta","data_fields","children"}]}` JSON and minimal XNAT XML.

Pure functions of records; URIs follow xnat-api §3.8 (accession IDs, numeric resource IDs).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

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

PROJECT_COLUMNS = ["ID", "secondary_ID", "name", "description", "pi_firstname", "pi_lastname"]
SUBJECT_COLUMNS = ["ID", "project", "label", "insert_date", "insert_user"]
EXPERIMENT_COLUMNS = ["ID", "project", "date", "xsiType", "label", "insert_date"]
SCAN_COLUMNS = [
    "xnat_imagescandata_id", "ID", "type", "quality", "xsiType", "note", "series_description"
]  # fmt: skip
PK_COLUMN = "xnat:subjectassessordata/id"
# XML paths of experiment shortcuts (lower-cased): asked for by path, a column comes back under
# the shortcut's name (XNAT's formatHeaders; pyxnat's array API relies on `subject_ID`).
EXPERIMENT_PATHS = {
    "xnat:experimentdata/id": "ID",
    "xnat:experimentdata/project": "project",
    "xnat:experimentdata/label": "label",
    "xnat:experimentdata/date": "date",
    "xnat:subjectassessordata/subject_id": "subject_ID",
    "xnat:subjectdata/label": "subject_label",
    "xnat:subjectdata/project": "subject_project",
    "xnat:experimentdata/meta/insert_date": "insert_date",
    "xnat:experimentdata/meta/insert_user/login": "insert_user",
    "xnat:experimentdata/meta/last_modified": "last_modified",
    "xnat:experimentdata/extension_item/element_name": "xsiType",
}


def project_row(project: Project) -> dict[str, str]:
    """A `/data/projects` row."""
    return {
        "ID": project.id,
        "secondary_ID": project.secondary_id,
        "name": project.name,
        "description": project.description,
        "pi_firstname": project.pi_firstname,
        "pi_lastname": project.pi_lastname,
        "accessibility": project.accessibility,
        "insert_date": project.insert_date,
        "URI": f"/data/projects/{project.id}",
    }


def subject_row(subject: Subject, project: str = "") -> dict[str, str]:
    """A subjects-listing row (fields such as `gender` available through `columns=`); listed
    under a project it is shared into, `project` and `label` are that project's (§1.4)."""
    project = project or subject.project
    row = {
        "ID": subject.id,
        "project": project,
        "label": subject.label_in(project),
        "insert_date": subject.insert_date,
        "insert_user": subject.insert_user,
        "last_modified": subject.last_modified,
    }
    row.update(subject.fields)
    row["URI"] = f"/data/subjects/{subject.id}"
    return row


def experiment_row(experiment: Experiment, subject: Subject, project: str = "") -> dict[str, str]:
    """An experiments-listing row with every column `columns=` may ask for; listed under a
    project it is shared into, `project`, `label` and `subject_label` are that project's."""
    project = project or experiment.project
    row = {
        "ID": experiment.id,
        "project": project,
        "date": experiment.date,
        "xsiType": experiment.xsi_type,
        "label": experiment.label_in(project),
        "insert_date": experiment.insert_date,
        PK_COLUMN: experiment.id,
        "subject_ID": subject.id,
        "subject_label": subject.label_in(project),
        "subject_project": subject.project,
        "insert_user": experiment.insert_user,
        "last_modified": experiment.last_modified,
    }
    row.update(experiment.fields)
    row["URI"] = f"/data/experiments/{experiment.id}"
    return row


def scan_row(scan: Scan) -> dict[str, str]:
    """A scans-listing row."""
    row = {
        "xnat_imagescandata_id": str(scan.db_id),
        "ID": scan.id,
        "type": scan.type,
        "quality": scan.quality,
        "xsiType": scan.xsi_type,
        "note": scan.note,
        "series_description": scan.series_description,
        "insert_date": scan.insert_date,
    }
    row.update(scan.fields)
    row["URI"] = f"/data/experiments/{scan.experiment}/scans/{scan.id}"
    return row


def assessor_row(assessor: Assessor, session: Experiment) -> dict[str, str]:
    """An assessors-listing row with every column `columns=` may ask for."""
    row = {
        "ID": assessor.id,
        "project": assessor.project,
        "date": assessor.date,
        "xsiType": assessor.xsi_type,
        "label": assessor.label,
        "insert_date": assessor.insert_date,
        "session_ID": session.id,
        "session_label": session.label,
        "session_project": session.project,
        "insert_user": assessor.insert_user,
        "last_modified": assessor.last_modified,
    }
    row.update(assessor.fields)
    row["URI"] = f"/data/experiments/{session.id}/assessors/{assessor.id}"
    return row


RECON_XSI = "xnat:reconstructedImageData"
_CATEGORIES = {
    "scan": "scans",
    "assessor": "assessors",
    "assessor_in": "assessors",
    "recon": "reconstructions",
    "recon_in": "reconstructions",
}


def resource_row(resource: Resource, cat_desc: str = "") -> dict[str, str]:
    """A resources-listing row (no URI column, §3.5); `cat_desc` is the scan type, the
    assessor's xsiType or the reconstruction's type for their resources."""
    recon = resource.reconstruction
    owner_ids = {"scan": resource.scan, "assessor": resource.assessor, "recon": recon}
    owner_ids["recon_in"], owner_ids["assessor_in"] = recon, resource.assessor
    return {
        "xnat_abstractresource_id": str(resource.id),
        "label": resource.label,
        "element_name": "xnat:resourceCatalog",
        "category": _CATEGORIES.get(resource.level, "resources"),
        "cat_id": owner_ids.get(resource.level, resource.experiment),
        "cat_desc": cat_desc if resource.level in _CATEGORIES else " ",
        "file_count": str(len(resource.files)),
        "file_size": str(resource.total_size()),
        "tags": resource.tags,
        "content": resource.content,
        "format": resource.format,
    }


def below_session(resource: Resource, assessor_type: str = "out") -> str:
    """The owner path of a scan's or assessor's resource below its session's URI ("" for the
    session's own); `assessor_type` is the `/out` segment, "" to leave it out (§3.8)."""
    if resource.level == "scan":
        return f"/scans/{resource.scan}"
    if resource.level == "assessor":
        side = "out" if assessor_type else ""  # `in` paths never name an OUT resource
        return f"/assessors/{resource.assessor}" + (f"/{side}" if side else "")
    if resource.level == "assessor_in":
        return f"/assessors/{resource.assessor}/in"
    if resource.level in ("recon", "recon_in"):
        side = "in" if resource.level == "recon_in" else "out"
        return f"/reconstructions/{resource.reconstruction}/{side}"  # as XNAT's resource_path
    return ""


def resource_base(resource: Resource) -> str:
    """The canonical URI of a resource's owner as multi-resource file listings give it."""
    if resource.level == "project":
        return f"/data/projects/{resource.project}"
    if resource.level == "subject":
        return f"/data/projects/{resource.project}/subjects/{resource.subject}"
    return f"/data/experiments/{resource.experiment}{below_session(resource)}"


def file_row(resource: Resource, entry: FileEntry, base: str) -> dict[str, str]:
    """A files-listing row; `base` is the owner URI the request implies (§3.8)."""
    return {
        "Name": entry.relpath.rsplit("/", 1)[-1],
        "Size": str(entry.size),
        "URI": f"{base}/resources/{resource.id}/files/{entry.relpath}",
        "collection": resource.label,
        "file_tags": entry.tags,
        "file_format": entry.format,
        "file_content": entry.content,
        "cat_ID": str(resource.id),
        "digest": entry.digest,
    }


def _item(xsi_type: str, fields: dict[str, Any], children: list[dict[str, Any]]) -> dict[str, Any]:
    meta = {"xsi:type": xsi_type, "isHistory": False, "start_date": fields.get("insert_date", "")}
    return {"meta": meta, "data_fields": fields, "children": children}


def _resource_items(resources: dict[str, Resource]) -> list[dict[str, Any]]:
    out = []
    for res in resources.values():
        fields = {
            "xnat_abstractresource_id": res.id,
            "label": res.label,
            "format": res.format,
            "content": res.content,
            "file_count": len(res.files),
            "file_size": res.total_size(),
        }
        out.append(_item("xnat:resourceCatalog", fields, []))
    return out


def _shares(xsi_type: str, shares: dict[str, str]) -> list[dict[str, Any]]:
    """The `sharing/share` children: one item per project the record is shared into."""
    items = [_item(xsi_type, {"project": p, "label": label}, []) for p, label in shares.items()]
    return _child("sharing/share", items)


def _child(field: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"field": field, "items": items}] if items else []


def recon_item(recon: Reconstruction) -> dict[str, Any]:
    """One reconstruction as an item: its fields, OUT (`out/file`) and IN (`in/file`) resources."""
    fields = {
        "ID": recon.id,
        "type": recon.type,
        "baseScanType": recon.base_scan_type,
        "image_session_ID": recon.session,
    }
    children = _child("out/file", _resource_items(recon.resources))
    children += _child("in/file", _resource_items(recon.inputs.resources))
    return {"items": [_item(RECON_XSI, fields, children)]}


def project_item(project: Project) -> dict[str, Any]:
    """`GET /data/projects/{P}?format=json`."""
    fields = {
        "ID": project.id,
        "secondary_ID": project.secondary_id,
        "name": project.name,
        "description": project.description,
    }
    children = _child("resources/resource", _resource_items(project.resources))
    return {"items": [_item("xnat:projectData", fields, children)]}


def subject_item(subject: Subject, experiments: list[Experiment]) -> dict[str, Any]:
    """`GET …/subjects/{S}?format=json`."""
    fields = {"ID": subject.id, "label": subject.label, "project": subject.project}
    fields.update(subject.fields)
    fields["insert_date"] = subject.insert_date
    exp_items = [
        _item(e.xsi_type, {"ID": e.id, "label": e.label, "project": e.project, "date": e.date}, [])
        for e in experiments
    ]
    children = _child("experiments/experiment", exp_items)
    children += _child("resources/resource", _resource_items(subject.resources))
    children += _shares("xnat:projectParticipant", subject.shares)
    return {"items": [_item("xnat:subjectData", fields, children)]}


def scan_item(scan: Scan, project: str) -> dict[str, Any]:
    """One scan as an item (also used inside experiments)."""
    fields: dict[str, Any] = {
        "ID": scan.id,
        "type": scan.type,
        "series_description": scan.series_description,
        "quality": scan.quality,
        "note": scan.note,
        "xnat_imagescandata_id": scan.db_id,
        "image_session_ID": scan.experiment,
        "project": project,
    }
    fields.update(scan.fields)
    return _item(scan.xsi_type, fields, _child("file", _resource_items(scan.resources)))


def _assessor_entry(assessor: Assessor) -> dict[str, Any]:
    fields = {
        "ID": assessor.id,
        "label": assessor.label,
        "project": assessor.project,
        "imageSession_ID": assessor.session,
        "date": assessor.date,
    }
    fields.update(assessor.fields)
    fields["insert_date"] = assessor.insert_date
    children = _child("out/file", _resource_items(assessor.resources))
    return _item(assessor.xsi_type, fields, children)


def assessor_item(assessor: Assessor) -> dict[str, Any]:
    """`GET …/assessors/{A}?format=json` (its OUT resources as `out/file` children)."""
    return {"items": [_assessor_entry(assessor)]}


def experiment_item(experiment: Experiment, subject: Subject) -> dict[str, Any]:
    """`GET …/experiments/{E}?format=json`."""
    fields = {
        "ID": experiment.id,
        "label": experiment.label,
        "project": experiment.project,
        "subject_ID": subject.id,
        "date": experiment.date,
    }
    fields.update(experiment.fields)
    scans = [scan_item(s, experiment.project) for s in experiment.scans.values()]
    children = _child("scans/scan", scans)
    children += _child("resources/resource", _resource_items(experiment.resources))
    assessors = [_assessor_entry(a) for a in experiment.assessors.values()]
    children += _child("assessors/assessor", assessors)
    children += _shares("xnat:experimentData_share", experiment.shares)
    return {"items": [_item(experiment.xsi_type, fields, children)]}


_NAMESPACES = (
    'xmlns:xnat="http://nrg.wustl.edu/xnat" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def _document(record: Experiment | Assessor, body: str) -> str:
    """An XML document rooted at the record's xsiType, with its ID, project, label and date."""
    root = record.xsi_type
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<{root} ID={quoteattr(record.id)} project={quoteattr(record.project)} "
        f"label={quoteattr(record.label)} {_NAMESPACES}>"
        f"<xnat:date>{escape(record.date)}</xnat:date>{body}</{root}>"
    )


def _assessor_body(assessor: Assessor) -> str:
    return (
        f"<xnat:imageSession_ID>{escape(assessor.session)}</xnat:imageSession_ID>"
        f"<xnat:out>{_files_xml(assessor.resources)}</xnat:out>"
    )


def experiment_xml(experiment: Experiment, subject: Subject) -> str:
    """A minimal XNAT XML document of a session with its scans, resources and assessors."""
    scans = "".join(
        f"<xnat:scan ID={quoteattr(s.id)} type={quoteattr(s.type)} "
        f"xsi:type={quoteattr(s.xsi_type)}>"
        f"<xnat:series_description>{escape(s.series_description)}</xnat:series_description>"
        f"{_files_xml(s.resources)}</xnat:scan>"
        for s in experiment.scans.values()
    )
    assessors = "".join(
        f"<xnat:assessor ID={quoteattr(a.id)} label={quoteattr(a.label)} "
        f"project={quoteattr(a.project)} xsi:type={quoteattr(a.xsi_type)}>"
        f"{_assessor_body(a)}</xnat:assessor>"
        for a in experiment.assessors.values()
    )
    return _document(
        experiment,
        f"<xnat:subject_ID>{escape(subject.id)}</xnat:subject_ID>"
        f"<xnat:scans>{scans}</xnat:scans>"
        f"<xnat:resources>{_files_xml(experiment.resources, 'resource')}</xnat:resources>"
        f"<xnat:assessors>{assessors}</xnat:assessors>",
    )


def assessor_xml(assessor: Assessor) -> str:
    """A minimal XNAT XML document of an image assessor with its OUT resources."""
    return _document(assessor, _assessor_body(assessor))


def _files_xml(resources: dict[str, Resource], tag: str = "file") -> str:
    return "".join(
        f"<xnat:{tag} label={quoteattr(r.label)} format={quoteattr(r.format)} "
        f'file_count="{len(r.files)}" file_size="{r.total_size()}" '
        f'xnat_abstractresource_id="{r.id}" xsi:type="xnat:resourceCatalog"/>'
        for r in resources.values()
    )


def simple_xml(tag: str, fields: dict[str, str]) -> str:
    """A minimal XML document for a project or subject."""
    attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in fields.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{tag} {attrs} xmlns:xnat="http://nrg.wustl.edu/xnat"/>'
    )
