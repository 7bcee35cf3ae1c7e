"""Subject and session labels for each study: from templates over DICOM tags, fixed values, or
XNAT's defaults; made XNAT-safe; one session label per study within a run.

Pure: plain functions over ``Study`` values.

Rules:
* A template is text with ``{Keyword}`` fields (``'{PatientID}_{StudyDate}'``); a field must
  name a keyword of ``instance.TAGS`` (what discovery reads), else ``UsageError`` naming it,
  at parse time. Format specs and conversions (``{PatientID:>8}``, ``{PatientID!r}``) and
  unbalanced braces are ``UsageError`` too. A fixed value is a template without fields.
* The template's own text must already be label-safe (``[A-Za-z0-9_-]``), else ``UsageError``:
  we never silently rewrite what the user typed.
* A field renders the tag's value in the study's first instance (``Study.first``); a missing
  tag renders empty. Values are made safe the way XNAT does it (``Labels.toLabelChars`` in
  XNAT: regex ``[^\\w-]`` with Java's ASCII ``\\w``): every UTF-16 code unit outside
  ``[A-Za-z0-9_-]`` becomes ``_``, so ``Doe^Jane`` → ``Doe_Jane`` and a character outside
  the BMP → ``__``.
* A label that renders empty is an error for that study (``LabelFailure``), not for the run.
* Without templates XNAT's default identification applies (``ClassicDicomObjectIdentifier``,
  §11.7), each label the first of: ``Subject: value`` / ``Session: value`` in PatientComments,
  then in StudyComments (XNAT's ``ContainedAssignmentExtractor``: the name in any case,
  ``:``, a value of ``[A-Za-z0-9_-]*``, set off by whitespace, ``,`` or ``;``, matched with
  the same backtracking order: an assignment at the very start wins, else the last one; an
  empty value counts as none, as in XNAT's ``ChainExtractor``), then PatientName (subject) /
  PatientID (session); the result made safe as above. XNAT would name a session left
  empty ``dicom_upload``; we report it instead (rule above).
* One session per StudyInstanceUID: XNAT session labels are unique within a project (an
  experiment is addressed as ``/projects/P/experiments/{label}``), so two studies of one run
  whose session labels are equal (ignoring case, to be safe) are told apart by the session
  label alone, never merged: studies are taken in StudyInstanceUID order; the first keeps the
  label; each later one gets ``_2``, ``_3``, … — the smallest suffix that is neither another
  study's unsuffixed label nor already given. The subject label is never suffixed (a subject
  may well have several sessions). Deterministic for a given set of studies.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from xnatsync.dicom.instance import TAGS
from xnatsync.dicom.studies import Study
from xnatsync.errors import UsageError

_SAFE = re.compile(r"[A-Za-z0-9_-]*")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Template:
    """Parsed label template: literal text and tag keywords, alternating in ``parts``."""

    text: str
    parts: tuple[tuple[str, str | None], ...]  # (literal, keyword or None)

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(keyword for _, keyword in self.parts if keyword is not None)

    def render(self, study: Study) -> str:
        """The label for ``study``: literals as written, tag values made XNAT-safe."""
        first = study.first
        return "".join(
            literal + (xnat_safe(first.tag(keyword)) if keyword else "")
            for literal, keyword in self.parts
        )


def parse_template(text: str, *, what: str = "label") -> Template:
    """Parse ``text`` (``what`` names it in errors, e.g. ``"--session-label"``)."""
    if not text:
        raise UsageError(f"{what}: empty template")
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise UsageError(f"{what}: bad template {text!r} ({exc})") from None
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in pieces:
        if not _SAFE.fullmatch(literal):
            bad = _UNSAFE_CHAR.search(literal)
            char = bad.group() if bad else "?"
            raise UsageError(
                f"{what}: {text!r} has {char!r}; XNAT labels allow only letters, digits, '_' "
                "and '-' outside {fields}"
            )
        if field is not None and field not in TAGS:
            known = ", ".join(sorted(TAGS))
            raise UsageError(f"{what}: unknown DICOM tag {{{field}}} in {text!r}; known: {known}")
        if spec or conversion:
            raise UsageError(f"{what}: {{{field}}} in {text!r} takes no format or conversion")
        parts.append((literal, field))
    return Template(text=text, parts=tuple(parts))


def fixed(value: str, *, what: str = "label") -> Template:
    """A fixed label (no fields); it must already be label-safe."""
    if not value or not _SAFE.fullmatch(value):
        raise UsageError(
            f"{what}: {value!r} is not an XNAT label (letters, digits, '_' and '-' only)"
        )
    return Template(text=value, parts=((value, None),))


@dataclass(frozen=True, slots=True)
class XnatDefault:
    """XNAT's default rule for one label: an assignment in the comments, else a tag."""

    name: str  # "Subject" or "Session"
    fallback: str  # the keyword used when no comment assigns it

    @property
    def text(self) -> str:
        return f"{self.name}: in the comments, else {{{self.fallback}}}"

    def render(self, study: Study) -> str:
        first = study.first
        for comments in (first.patient_comments, first.study_comments):
            value = comment_assignment(comments, self.name)
            if value is not None:
                return xnat_safe(value)
        return xnat_safe(first.tag(self.fallback))


def comment_assignment(comments: str, name: str) -> str | None:
    """The value of ``name: value`` in a comment, as XNAT's ContainedAssignmentExtractor reads
    it (``None`` when there is none)."""
    pattern = rf"(?:|.*[\s,;]){re.escape(name)}\s*:\s*([\w\-]*)(?:[\s,;].*)?"
    match = re.fullmatch(pattern, comments, re.IGNORECASE | re.ASCII)
    return match.group(1) or None if match else None  # XNAT's ChainExtractor skips ""


DEFAULT_SUBJECT = XnatDefault("Subject", "PatientName")
DEFAULT_SESSION = XnatDefault("Session", "PatientID")
Rule = Template | XnatDefault


@dataclass(frozen=True, slots=True)
class Naming:
    """How a run names subjects and sessions (XNAT's defaults when not given)."""

    subject: Rule = DEFAULT_SUBJECT
    session: Rule = DEFAULT_SESSION


@dataclass(frozen=True, slots=True)
class Labelled:
    """A study with its labels; ``session`` carries the run's suffix if one was needed."""

    study: Study
    subject: str
    session: str
    suffix: int = 1  # 1: the label as rendered; n ≥ 2: ``_n`` was appended


@dataclass(frozen=True, slots=True)
class LabelFailure:
    """A study that cannot be named (a label rendered empty): it is not sent."""

    study: Study
    reason: str


def xnat_safe(value: str) -> str:
    """XNAT's ``toLabelChars``: each UTF-16 code unit outside ``[A-Za-z0-9_-]`` → ``_``."""
    return "".join(
        char if _SAFE.fullmatch(char) else "_" * (2 if ord(char) > 0xFFFF else 1) for char in value
    )


def assign(studies: Sequence[Study], naming: Naming) -> list[Labelled | LabelFailure]:
    """Labels for ``studies``, in StudyInstanceUID order, unique session labels (see above)."""
    rendered: list[Labelled | LabelFailure] = []
    for study in sorted(studies, key=lambda s: s.uid):
        subject = naming.subject.render(study)
        session = naming.session.render(study)
        empty = [n for n, label in (("subject", subject), ("session", session)) if not label]
        if empty:
            tags = {
                "subject": naming.subject.text,
                "session": naming.session.text,
            }
            reason = "; ".join(f"{n} label {tags[n]!r} is empty for this study" for n in empty)
            rendered.append(LabelFailure(study, reason))
        else:
            rendered.append(Labelled(study, subject, session))
    return _unique(rendered)


def _unique(rendered: list[Labelled | LabelFailure]) -> list[Labelled | LabelFailure]:
    natural = {r.session.casefold() for r in rendered if isinstance(r, Labelled)}
    given: set[str] = set()
    out: list[Labelled | LabelFailure] = []
    for item in rendered:
        if isinstance(item, LabelFailure):
            out.append(item)
            continue
        key = item.session.casefold()
        if key not in given:
            given.add(key)
            out.append(item)
            continue
        n = 2
        while (f"{key}_{n}" in natural) or (f"{key}_{n}" in given):
            n += 1
        given.add(f"{key}_{n}")
        out.append(Labelled(item.study, item.subject, f"{item.session}_{n}", suffix=n))
    return out
