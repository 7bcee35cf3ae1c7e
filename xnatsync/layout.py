"""Where a remote file goes under DEST: layout templates (pure; path safety is ``paths``).

A ``Layout`` maps each ``RemoteFile`` to a relative ``PurePosixPath``. The default is XNAT's own
archive (and zip) shape::

    {project}/resources/{resource}/files/{path}                                     project
    {project}/{subject}/resources/{resource}/files/{path}                           subject
    {project}/{subject}/{experiment}/resources/{resource}/files/{path}              experiment
    {project}/{subject}/{experiment}/scans/{scan}-{type}/resources/{resource}/files/{path}
    {project}/{subject}/{experiment}/assessors/{container}/resources/{resource}/files/{path}
    {project}/{subject}/{experiment}/reconstructions/{container}/resources/{resource}/files/{path}

Template rules (``parse_layout``), checked once at parse time, ``UsageError`` otherwise:

* A spec is ``TEMPLATE`` (every level) or ``LEVEL=TEMPLATE`` (one level, e.g. ``scan=...``);
  levels given no template keep the default above.
* Placeholders: ``PLACEHOLDERS``; no format specs or conversions. ``{type}`` is the scan type
  (or assessor/reconstruction type) with non-word characters replaced by ``_`` as XNAT's zip
  naming does; ``{scan}`` is the scan ID (scans only); ``{container}`` the scan, assessor or
  reconstruction ID; ``{level}`` the level name.
* The last segment is exactly ``{path}`` (the server's relative path, sub-folders kept), and
  ``{path}`` appears nowhere else.
* Uniqueness across owners: ``{project}`` (unless the pull names one project) and
  ``{resource}`` always; ``{subject}`` or
  ``{subject_id}`` for subject files; ``{experiment}`` or ``{experiment_id}`` for experiment,
  scan, assessor and reconstruction files; ``{container}`` (or ``{scan}`` for scans) for scan,
  assessor and reconstruction files. Collisions *within* one experiment (for example a session
  resource and a scan of the same name under a flat template) are caught by the planner.
* Values a level lacks (``{scan}`` of a session resource, ``{subject}`` of a project resource)
  render empty. In a segment where some placeholder rendered empty, leading and trailing
  ``-_. `` are stripped (``{scan}-{type}`` with no type gives ``7``); a segment left empty is
  dropped. A value the level must have (the experiment label of a scan file, say) being empty is
  an ``UnsafePathError``.

Safety invariant: ``Layout.relpath`` returns an NFC-normalised relative path of non-empty
segments, none ``.``/``..``, none with ``/``, ``\\``, NUL or control characters, none with a
Windows drive or UNC anchor, none over 255 UTF-8 bytes, or it raises ``UnsafePathError`` naming
the file (``paths``). Server labels are as untrusted as server paths. ``localfs.resolve_under``
adds the only I/O check: no existing component under DEST is a symlink.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from xnatsync.errors import UnsafePathError, UsageError
from xnatsync.model import Level, RemoteFile
from xnatsync.paths import char_problem, checked_parts, segment_problem

PLACEHOLDERS = frozenset(
    {
        "project",
        "subject",
        "subject_id",
        "experiment",
        "experiment_id",
        "level",
        "scan",
        "container",
        "type",
        "resource",
        "path",
    }
)

_FILES = "resources/{resource}/files/{path}"
_SESSION = "{project}/{subject}/{experiment}"
DEFAULT_TEMPLATES: Mapping[Level, str] = {
    Level.PROJECT: "{project}/" + _FILES,
    Level.SUBJECT: "{project}/{subject}/" + _FILES,
    Level.EXPERIMENT: f"{_SESSION}/{_FILES}",
    Level.SCAN: f"{_SESSION}/scans/{{scan}}-{{type}}/{_FILES}",
    Level.ASSESSOR: f"{_SESSION}/assessors/{{container}}/{_FILES}",
    Level.RECONSTRUCTION: f"{_SESSION}/reconstructions/{{container}}/{_FILES}",
}

_CONTAINER_LEVELS = frozenset({Level.SCAN, Level.ASSESSOR, Level.RECONSTRUCTION})
_EXPERIMENT_LEVELS = _CONTAINER_LEVELS | {Level.EXPERIMENT}
_STRIP = "-_. "
_NON_WORD = re.compile(r"\W", re.ASCII)

# Placeholder → levels where it has a value. Outside these it renders "".
_DEFINED: Mapping[str, frozenset[Level]] = {
    "subject": frozenset(Level) - {Level.PROJECT},
    "subject_id": frozenset(Level) - {Level.PROJECT},
    "experiment": _EXPERIMENT_LEVELS,
    "experiment_id": _EXPERIMENT_LEVELS,
    "scan": frozenset({Level.SCAN}),
    "container": _CONTAINER_LEVELS,
    "type": _CONTAINER_LEVELS,
}
# Requirements for uniqueness: each inner tuple needs one of its placeholders present.
_REQUIRED: Mapping[Level, tuple[tuple[str, ...], ...]] = {
    Level.PROJECT: (),
    Level.SUBJECT: (("subject", "subject_id"),),
    Level.EXPERIMENT: (("experiment", "experiment_id"),),
    Level.SCAN: (("experiment", "experiment_id"), ("container", "scan")),
    Level.ASSESSOR: (("experiment", "experiment_id"), ("container",)),
    Level.RECONSTRUCTION: (("experiment", "experiment_id"), ("container",)),
}

Segment = tuple[tuple[str, str | None], ...]
"""One path segment: (literal text, placeholder name or None) pairs, as string.Formatter parses."""


class Placer(Protocol):
    """Anything that places remote files under DEST: a ``Layout`` or a ``Memo`` of one."""

    def relpath(self, f: RemoteFile) -> PurePosixPath: ...


class Memo:
    """A layout's answers remembered by file key, for one owner's diff and plan (which both
    ask for every file). Use one per owner: it grows with the owner's files."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._known: dict[str, PurePosixPath] = {}

    def relpath(self, f: RemoteFile) -> PurePosixPath:
        known = self._known.get(f.key)
        if known is None:
            known = self._known[f.key] = self._layout.relpath(f)
        return known


def sanitize_type(value: str) -> str:
    """XNAT's zip naming for scan types: every non-word (ASCII) character becomes ``_``."""
    return _NON_WORD.sub("_", value)


@dataclass(frozen=True, slots=True)
class Layout:
    """Parsed, validated templates, one per level. Build with ``parse_layout``."""

    templates: Mapping[Level, tuple[Segment, ...]]
    sources: Mapping[Level, str]
    # rendered, checked directory parts per placement: every file of a resource shares them
    _prefixes: dict[tuple[str, ...], tuple[str, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def relpath(self, f: RemoteFile) -> PurePosixPath:
        """Where ``f`` goes under DEST; ``UnsafePathError`` if any part is unsafe."""
        if f.path.startswith("/"):
            raise UnsafePathError(f"unsafe path for {f.key}: absolute path {f.path!r}")
        return PurePosixPath("/".join((*self._prefix(f), *checked_parts(f.path.split("/"), f.key))))

    def _prefix(self, f: RemoteFile) -> tuple[str, ...]:
        place = (f.level.value, f.project, f.subject, f.subject_id, f.experiment,
                 f.experiment_id, f.container, f.container_type, f.resource)  # fmt: skip
        prefix = self._prefixes.get(place)
        if prefix is None:
            values = _values(f)
            parts = [_render(segment, values, f) for segment in self.templates[f.level][:-1]]
            prefix = checked_parts([p for p in parts if p], f.key)
            if len(self._prefixes) >= _PREFIX_CACHE:
                self._prefixes.clear()
            self._prefixes[place] = prefix
        return prefix

    @property
    def per_project(self) -> bool:
        """Every template has ``{project}``: paths of several projects cannot collide."""
        return all(
            any(name == "project" for seg in segments for _, name in seg)
            for segments in self.templates.values()
        )

    def describe(self) -> str:
        """One line per level, for ``--dry-run`` and logs."""
        return "\n".join(f"{level.value}={self.sources[level]}" for level in Level)


_PREFIX_CACHE = 65536


def _values(f: RemoteFile) -> dict[str, str]:
    raw = {
        "project": f.project,
        "subject": f.subject,
        "subject_id": f.subject_id,
        "experiment": f.experiment,
        "experiment_id": f.experiment_id,
        "level": f.level.value,
        "scan": f.container,
        "container": f.container,
        "type": sanitize_type(f.container_type.strip()),
        "resource": f.resource,
    }
    values: dict[str, str] = {}
    for name, value in raw.items():
        defined = _DEFINED.get(name)
        if defined is not None and f.level not in defined:
            value = ""
        elif value == "" and name != "type":
            raise UnsafePathError(f"unsafe path for {f.key}: empty {name}")
        values[name] = value
    return values


def _render(segment: Segment, values: Mapping[str, str], f: RemoteFile) -> str:
    out: list[str] = []
    some_empty = False
    for literal, name in segment:
        out.append(literal)
        if name is None:
            continue
        value = values[name]
        if "/" in value or "\\" in value:
            raise UnsafePathError(f"unsafe path for {f.key}: {name} {value!r} contains a slash")
        some_empty = some_empty or value == ""
        out.append(value)
    text = "".join(out)
    return text.strip(_STRIP) if some_empty else text


def parse_layout(specs: str | Sequence[str] | None = None, *, one_project: bool = False) -> Layout:
    """Parse ``--layout`` specs (``TEMPLATE`` or ``LEVEL=TEMPLATE``) over the default layout.

    ``one_project``: the pull names one project, so templates may leave ``{project}`` out (a
    tree laid out by another tool, such as xnatpy's ``{experiment}/scans/…``)."""
    if isinstance(specs, str):
        specs = [specs]
    sources = dict(DEFAULT_TEMPLATES)
    per_level: dict[Level, str] = {}
    for spec in specs or ():
        level, template = _split_spec(spec)
        if level is None:
            sources = dict.fromkeys(Level, template)
        else:
            per_level[level] = template
    sources.update(per_level)
    templates = {level: _parse_template(sources[level], level, one_project) for level in Level}
    return Layout(templates=templates, sources=sources)


def _split_spec(spec: str) -> tuple[Level | None, str]:
    head, sep, rest = spec.partition("=")
    if sep and head in {lv.value for lv in Level}:
        return Level(head), rest
    return None, spec


def _parse_template(template: str, level: Level, one_project: bool) -> tuple[Segment, ...]:
    where = f"--layout {template!r} (level {level.value})"
    if template.startswith("/") or not template:
        raise UsageError(f"{where}: a layout template must be a relative path")
    segments = tuple(_parse_segment(text, where) for text in template.split("/"))
    names = [name for seg in segments for _, name in seg if name is not None]
    if segments[-1] != (("", "path"),) or names.count("path") != 1:
        raise UsageError(f"{where}: the template must end with '/{{path}}' and use it once")
    required = () if one_project else (("project",),)
    for group in (*required, ("resource",), *_REQUIRED[level]):
        if not set(group) & set(names):
            wanted = " or ".join(f"{{{name}}}" for name in group)
            raise UsageError(f"{where}: needs {wanted} so that paths stay unique")
    return segments


def _parse_segment(text: str, where: str) -> Segment:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from exc
    if not parsed:
        raise UsageError(f"{where}: empty path segment")
    segment: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            known = ", ".join(sorted(PLACEHOLDERS))
            raise UsageError(f"{where}: unknown placeholder {{{name}}}; known: {known}")
        segment.append((literal, name))
    only_literal = len(segment) == 1 and segment[0][1] is None
    problem = segment_problem(text) if only_literal else char_problem(text)
    if problem:
        raise UsageError(f"{where}: unsafe segment {text!r}: {problem}")
    return tuple(segment)


DEFAULT_LAYOUT = parse_layout()


READ_ORDER = (Level.PROJECT, Level.SUBJECT, Level.EXPERIMENT, Level.ASSESSOR,
              Level.RECONSTRUCTION, Level.SCAN)  # fmt: skip
# what push needs of each level's path to find the owner by labels (IDs differ between servers)
_READ_NEEDS: Mapping[Level, tuple[tuple[str, ...], ...]] = {
    Level.PROJECT: (),
    Level.SUBJECT: (("subject",),),
    Level.EXPERIMENT: (("subject",), ("experiment",)),
    Level.SCAN: (("subject",), ("experiment",), ("scan", "container")),
    Level.ASSESSOR: (("subject",), ("experiment",), ("container",)),
    Level.RECONSTRUCTION: (("subject",), ("experiment",), ("container",)),
}


@dataclass(frozen=True, slots=True)
class Placed:
    """What a relative path says it was written from: its level and placeholder values."""

    level: Level
    values: Mapping[str, str]


class Reader:
    """A layout read backwards (push): which level and values a relative path was written from.

    Rules, as documented for ``push --layout``:
    * A path is read by the level whose template matches all of it. Where two levels' templates
      match one path (a layout whose levels collapse to the same shape), ``read`` gives both
      and the caller refuses the path: guessing would send a file to the wrong owner.
    * Within a segment each placeholder takes the shortest text that lets the rest match, so
      ``{scan}-{type}`` splits at the first ``-`` (a scan ID with a ``-`` needs the tree's
      journal to come back right). ``{type}`` may be absent together with the literal before
      it (pull strips the separator when a type is empty); ``{path}`` takes the rest.
    * A placeholder used twice must have the same text both times; ``{level}`` is the level's
      own name.
    * ``{subject_id}`` and ``{experiment_id}`` are refused: IDs are the source server's, and a
      push names owners by label. Each level must give the labels push needs (``_READ_NEEDS``).
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._patterns: list[tuple[Level, re.Pattern[str]]] = []
        for level in READ_ORDER:
            segments = layout.templates[level]
            names = {name for seg in segments for _, name in seg if name is not None}
            where = f"--layout {layout.sources[level]!r} (level {level.value})"
            ids = sorted(names & {"subject_id", "experiment_id"})
            if ids:
                raise UsageError(f"{where}: push names owners by label; {{{ids[0]}}} is the "
                                 "source server's ID")  # fmt: skip
            for group in _READ_NEEDS[level]:
                if not set(group) & names:
                    wanted = " or ".join(f"{{{name}}}" for name in group)
                    raise UsageError(f"{where}: push needs {wanted} to find where files go")
            for segment in segments:
                alone = [n for _, n in segment if n is not None] == ["type"]
                if alone and not "".join(lit for lit, _ in segment).strip(_STRIP):
                    raise UsageError(
                        f"{where}: {{type}} alone in a folder vanishes for a scan without a "
                        "type, and push could not tell what follows from it; put it beside "
                        "the ID (for example {scan}-{type})"
                    )
            self._patterns.append((level, _pattern(segments, level)))

    @property
    def rooted_in_project(self) -> bool:
        """Every template starts with a ``{project}`` folder (pull's default does)."""
        return all(self.layout.templates[level][0] == (("", "project"),) for level in READ_ORDER)

    def read(self, rel: str) -> list[Placed]:
        """Every level whose template matches the whole of ``rel``, in ``READ_ORDER``: none
        (the path fits no level), one, or more (the path is ambiguous under this layout: its
        levels write the same shape, and the caller must refuse it rather than guess)."""
        out = []
        for level, pattern in self._patterns:
            match = pattern.fullmatch(rel)
            if match is not None:
                values = {k: v for k, v in match.groupdict().items() if v is not None}
                out.append(Placed(level, values))
        return out


def _pattern(segments: tuple[Segment, ...], level: Level) -> re.Pattern[str]:
    """The regular expression of what ``_render`` writes for ``level``: placeholders the level
    lacks are empty, and a segment with an empty one loses its outer ``-_. `` (and is dropped
    when nothing is left)."""
    seen: set[str] = set()
    parts: list[str] = []
    for segment in segments:
        pieces = [(lit, name if name is None or _defined(name, level) else None)
                  for lit, name in segment]  # fmt: skip
        if pieces != list(segment):  # some placeholder renders empty here: outer text goes
            pieces = _stripped(pieces)
            if not pieces:
                continue
        out: list[str] = []
        for literal, name in pieces:
            text = re.escape(literal)
            if name is None:
                out.append(text)
            elif name == "path":
                out.append(text + "(?P<path>.+)")
            elif name == "level":
                out.append(text + re.escape(level.value))
            elif name in seen:
                out.append(f"{text}(?P={name})")
            elif name == "type":
                seen.add(name)
                out.append(f"(?:{text}(?P<type>[^/]+?))?")
            else:
                seen.add(name)
                out.append(f"{text}(?P<{name}>[^/]+?)")
        parts.append("".join(out))
    return re.compile("/".join(parts))


def _defined(name: str, level: Level) -> bool:
    defined = _DEFINED.get(name)
    return defined is None or level in defined


def _stripped(pieces: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """``pieces`` without the ``-_. `` at the segment's two ends (``_render``'s strip); runs
    of literal text are joined first, so the ends are whole."""
    merged: list[tuple[str, str | None]] = []
    for lit, name in pieces:
        if merged and merged[-1][1] is None:
            merged[-1] = (merged[-1][0] + lit, name)
        else:
            merged.append((lit, name))
    if not merged:
        return []
    merged[0] = (merged[0][0].lstrip(_STRIP), merged[0][1])
    if merged[-1][1] is None:
        merged[-1] = (merged[-1][0].rstrip(_STRIP), None)
    return [(lit, name) for lit, name in merged if lit or name is not None]
