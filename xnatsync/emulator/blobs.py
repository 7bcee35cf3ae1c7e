"""The bytes of catalog entries on disk, at `root/archive/{project}/{resource id}/{relpath}`
(so relabelling never moves bytes), and a scratch folder on the same filesystem for atomic
moves. Catalog paths are checked here, before anything touches the disk.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil

from xnatsync.emulator.records import Resource


def safe_relpath(relpath: str) -> str:
    """Normalise a catalog path; refuse absolute paths, `..`, empty and NUL-bearing names."""
    unified = relpath.replace("\\", "/")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    anchored = unified.startswith("/") or (len(unified) > 1 and unified[1] == ":")
    if not parts or anchored or ".." in parts or "\0" in relpath:
        raise ValueError(f"unsafe file path: {relpath!r}")
    return "/".join(parts)


def md5_of_path(path: pathlib.Path) -> str:
    """Lower-case hex MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Blobs:
    """Where a store keeps file bytes."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    def path(self, resource: Resource, relpath: str) -> pathlib.Path:
        """Where the bytes of a catalog entry live."""
        return self.root / "archive" / resource.project / str(resource.id) / relpath

    def temp_dir(self) -> pathlib.Path:
        """A scratch directory on the same filesystem as the archive (for atomic moves)."""
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def put(
        self, resource: Resource, relpath: str, data: bytes | pathlib.Path, digest: str | None
    ) -> tuple[os.stat_result, str]:
        """Write bytes (or move a file) to the entry's place; its stat and MD5."""
        target = self.path(resource, relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
            digest = digest or hashlib.md5(data).hexdigest()
        else:
            digest = digest or md5_of_path(data)
            try:
                os.replace(data, target)
            except OSError:
                shutil.move(str(data), str(target))
        return target.stat(), digest

    def remove(self, resource: Resource, relpath: str) -> None:
        """Drop one entry's bytes."""
        self.path(resource, relpath).unlink(missing_ok=True)

    def remove_resource(self, resource: Resource) -> None:
        """Drop a resource's folder of bytes."""
        shutil.rmtree(self.path(resource, "x").parent, ignore_errors=True)
