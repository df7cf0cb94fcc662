"""Turn the paths of an upload (files, folders, zips) into typed files to read."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ml.io.archive import extract_zip, is_system_file
from ml.io.limits import ByteBudget, LoadLimits, format_bytes
from ml.io.sniff import HEAD_BYTES, describe, sniff, sniff_gzip
from ml.io.text import clean_name
from ml.io.types import Rejected

#: Kinds a reader exists for, by what :func:`ml.io.sniff.sniff` says.
_READ_AS = {
    "dicom": "dicom",
    "dicom-raw": "dicom",
    "png": "image",
    "jpeg": "image",
    "bmp": "image",
    "tiff": "image",
    "nifti": "nifti",
    "gzip": "nifti",  # only once sniff_gzip has seen a NIfTI header inside
}
_TOO_DEEP = "zip inside a zip inside a zip; only one level of nested zips is read"
_NOT_READ = "this and any later files were not read"


@dataclass(frozen=True)
class Source:
    """One file of the upload: its user-facing name and a readable path."""

    name: str
    path: Path
    size: int
    kind: str  # "dicom" | "image" | "nifti"
    sniffed: str  # finer kind: "dicom-raw" (no preamble), "png", "gzip", ...


@dataclass
class Collected:
    sources: list[Source] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def collect_sources(
    paths: Iterable[str | os.PathLike[str]],
    *,
    limits: LoadLimits,
    workdir: Path,
    names: Mapping[str, str] | None = None,
) -> Collected:
    """Walk files, folders and zips; sort out what can be read and what cannot.

    Zip members are extracted into ``workdir`` (a directory the caller owns and
    removes). ``names`` maps an input path to the name the user knows it by.
    Every name is cleaned by :func:`ml.io.text.clean_name`.
    """
    collector = _Collector(limits=limits, workdir=workdir)
    for path in paths:
        name = (names or {}).get(str(path)) or Path(path).name or str(path)
        collector.add_path(Path(path), name=clean_name(name))
    return collector.result


class _Collector:
    def __init__(self, *, limits: LoadLimits, workdir: Path):
        self.limits = limits
        self.workdir = workdir
        self.budget = ByteBudget(limit=limits.max_total_bytes)
        self.result = Collected()
        self.files_seen = 0
        self.overflowed = False
        self.extracted = 0

    def add_path(self, path: Path, *, name: str) -> None:
        if path.is_dir():
            for child, child_name in _walk(path, name=name):
                self.add_file(child, name=child_name)
        elif path.is_file():
            self.add_file(path, name=name)
        else:
            self.reject(name, "no such file or folder")

    def add_file(self, path: Path, *, name: str, depth: int = 0) -> None:
        """Sort one file; ``depth`` > 0 for zip members, already budgeted."""
        name = clean_name(name)
        if is_system_file(name) or not self._count(name):
            return
        try:
            self._add_checked(path, name=name, depth=depth)
        except Exception as exc:  # untrusted input must never crash
            self.reject(name, f"could not be read ({type(exc).__name__}: {exc})")

    def _add_checked(self, path: Path, *, name: str, depth: int) -> None:
        size = path.stat().st_size
        if size > self.limits.max_file_bytes:
            limit = format_bytes(self.limits.max_file_bytes)
            return self.reject(
                name, f"{format_bytes(size)}; the limit per file is {limit}"
            )
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
        kind = sniff(head)
        if kind == "zip":
            return self._add_zip(path, name=name, depth=depth)
        if kind == "gzip" and not sniff_gzip(head):
            return self.reject(name, "gzip-compressed file that is not a NIfTI image")
        if kind not in _READ_AS:
            return self.reject(name, describe(head))
        source = Source(name, path, size, _READ_AS[kind], sniffed=kind)
        self._add_source(source, budgeted=depth > 0)

    def _add_source(self, source: Source, *, budgeted: bool) -> None:
        try:
            if not budgeted:
                self.budget.take(source.size)
        except ValueError as exc:
            return self.reject(source.name, str(exc))
        self.result.sources.append(source)

    def _add_zip(self, path: Path, *, name: str, depth: int) -> None:
        if depth >= 2:
            return self.reject(name, _TOO_DEEP)
        self.files_seen -= 1  # the zip itself is a container, its members count
        extracted = extract_zip(
            path,
            name=name,
            limits=self.limits,
            budget=self.budget,
            room=self.limits.max_files - self.files_seen,
            new_path=self._new_path,
        )
        self.result.rejected.extend(extracted.rejected)
        for member_name, member_path in extracted.files:
            self.add_file(member_path, name=member_name, depth=depth + 1)

    def _count(self, name: str) -> bool:
        self.files_seen += 1
        if self.files_seen <= self.limits.max_files:
            return True
        if not self.overflowed:
            self.overflowed = True
            limit = self.limits.max_files
            self.reject(name, f"more than {limit} files in the upload; {_NOT_READ}")
        return False

    def _new_path(self) -> Path:
        self.extracted += 1
        return self.workdir / f"member-{self.extracted:06d}"

    def reject(self, name: str, reason: str) -> None:
        self.result.rejected.append(Rejected(name, reason))


def _walk(folder: Path, *, name: str) -> list[tuple[Path, str]]:
    """Files under ``folder`` in name order, named ``name/relative/path``."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for file in sorted(files):
            path = Path(root) / file
            found.append((path, f"{name}/{path.relative_to(folder).as_posix()}"))
    return found
