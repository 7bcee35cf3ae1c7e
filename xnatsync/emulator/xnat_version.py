"""The XNAT version the emulator answers as, and the behaviours that depend on it (§2.5, §11.6).

Pure values (the routes that depend on them: `version_routes`). Clients branch on the version, so
the emulator must change with it:

* `/xapi/siteConfig/buildInfo` reports it (1.7+; a 1.6 server has no `/xapi` → 404);
* `GET /data/version` answers the bare version as `text/plain` on 1.6 and is not routed (404) on
  1.7+ — xnatpy tries it first and believes a 200;
* `Direct-Archive=true` is honoured from 1.8.3 (older servers ignore it: the session goes to the
  prearchive, as XNAT does when it has no direct-archive service);
* the DICOM-zip importer reads tar/tgz from 1.8.3; before, it read every upload as a zip
  stream, so a tar gave no entries: 200 with an empty answer, nothing imported.

A version is dot-separated numbers with at least major.minor and an optional `-SUFFIX`
(`1.8.10`, `1.8.10.1`, `1.9.0-SNAPSHOT`); anything else is refused with a one-line error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_VERSION = "1.8.10"
_SHAPE = re.compile(r"(\d+(?:\.\d+)+)(?:-[A-Za-z0-9.]+)?")


@dataclass(frozen=True, slots=True, order=True)
class XnatVersion:
    """A parsed version: `parts` compare numerically, `text` is what the server reports."""

    parts: tuple[int, ...]
    text: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> XnatVersion:
        """The version `text` names; ValueError (one line, naming it) if it is malformed."""
        match = _SHAPE.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"XNAT version {text!r} is malformed (expected e.g. 1.8.10)")
        return cls(tuple(int(p) for p in match.group(1).split(".")), text.strip())

    def at_least(self, *parts: int) -> bool:
        """True if this version is `parts` or later (missing parts count as 0)."""
        width = max(len(self.parts), len(parts))
        mine = self.parts + (0,) * (width - len(self.parts))
        return mine >= tuple(parts) + (0,) * (width - len(parts))

    @property
    def has_xapi(self) -> bool:
        """1.7 introduced `/xapi` (buildInfo) and dropped `/data/version`."""
        return self.at_least(1, 7)

    @property
    def direct_archive(self) -> bool:
        """`Direct-Archive=true` is honoured from 1.8.3."""
        return self.at_least(1, 8, 3)

    @property
    def tar_import(self) -> bool:
        """The DICOM-zip importer reads tar and tgz from 1.8.3."""
        return self.at_least(1, 8, 3)
