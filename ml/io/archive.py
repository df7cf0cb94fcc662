"""Read zip uploads safely: bounded sizes, no path tricks, no encrypted members."""

from __future__ import annotations

import re
import shutil
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ml.io.limits import ByteBudget, LoadLimits, MiB, format_bytes
from ml.io.text import clean_name
from ml.io.types import Rejected

_CHUNK = MiB
#: Members smaller than this are not ratio-checked: they cannot blow up memory.
_RATIO_CHECK_FROM = MiB
_DRIVE = re.compile(r"^[A-Za-z]:")
_SYSTEM_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
_END_RECORD_SEARCH = 22 + 65535  # end record plus the longest comment
_MIN_ENTRY_BYTES = 46  # a central directory entry with an empty name
# Folders and __MACOSX twins also take entries: allow a few per file to be read.
_MAX_ENTRIES_PER_FILE = 4
_SPARE_ENTRIES = 100


@dataclass
class Extracted:
    """Members of one zip written into the loader's temporary directory."""

    files: list[tuple[str, Path]] = field(default_factory=list)  # (name, path)
    rejected: list[Rejected] = field(default_factory=list)


def is_system_file(name: str) -> bool:
    """True for operating-system clutter (``.DS_Store``, ``__MACOSX/``, ``._x``)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if any(p == "__MACOSX" for p in parts):
        return True
    base = parts[-1] if parts else name
    return base.lower() in _SYSTEM_NAMES or base.startswith(".")


def extract_zip(
    path: Path,
    *,
    name: str,
    limits: LoadLimits,
    budget: ByteBudget,
    room: int,
    new_path: Callable[[], Path],
) -> Extracted:
    """Write the members of the zip at ``path`` to fresh paths from ``new_path``.

    ``name`` is the zip as the user knows it; members are named ``name/member``,
    cleaned by :func:`ml.io.text.clean_name` (files are written to ``new_path()``,
    never to a path made from a member's name).
    ``room`` is how many more files the upload may hold. A zip that breaks a limit
    as a whole is rejected whole; a bad member is rejected alone.
    """
    out = Extracted()
    listed = _listed_entries(path)
    if listed > _MAX_ENTRIES_PER_FILE * limits.max_files + _SPARE_ENTRIES:
        reason = f"zip lists about {listed} entries; an upload may hold at most"
        out.rejected.append(Rejected(name, f"{reason} {limits.max_files} files"))
        return out
    try:
        with zipfile.ZipFile(path) as zf:
            _extract_members(
                zf,
                out=out,
                name=name,
                limits=limits,
                budget=budget,
                room=room,
                new_path=new_path,
            )
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        out.rejected.append(Rejected(name, f"corrupt or incomplete zip file ({exc})"))
    return out


def _extract_members(
    zf: zipfile.ZipFile,
    *,
    out: Extracted,
    name: str,
    limits: LoadLimits,
    budget: ByteBudget,
    room: int,
    new_path: Callable[[], Path],
) -> None:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    infos = [i for i in infos if not is_system_file(i.filename)]
    problem = _zip_problem(infos, limits=limits, budget=budget, room=room)
    if problem:
        out.rejected.append(Rejected(name, problem))
        return
    for info in infos:
        # A member's name may hold anything: control characters, "../", 64 KiB.
        member, target = clean_name(f"{name}/{info.filename}"), new_path()
        reason = _member_problem(info, limits=limits) or _copy_member(
            zf, info, budget=budget, target=target
        )
        if reason:
            out.rejected.append(Rejected(member, reason))
        else:
            out.files.append((member, target))


def _listed_entries(path: Path) -> int:
    """Entries the zip's directory holds, from its end record, before zipfile reads
    (and builds an object for) every one of them; 0 when there is no end record."""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - _END_RECORD_SEARCH))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return 0
    count, directory_bytes = struct.unpack("<HI", tail[at + 10 : at + 16])
    return max(count, directory_bytes // _MIN_ENTRY_BYTES)


def _zip_problem(
    infos: list[zipfile.ZipInfo], *, limits: LoadLimits, budget: ByteBudget, room: int
) -> str:
    if not infos:
        return "empty zip file (no files inside)"
    if len(infos) > room:
        return (
            f"zip holds {len(infos)} files; an upload may hold at most "
            f"{limits.max_files} files"
        )
    declared = sum(i.file_size for i in infos)
    if declared > budget.remaining:
        return (
            f"zip would expand to {format_bytes(declared)}, more than the "
            f"{format_bytes(budget.remaining)} left for this upload (possible zip bomb)"
        )
    return ""


def _member_problem(info: zipfile.ZipInfo, *, limits: LoadLimits) -> str:
    if _is_unsafe(info.filename):
        return "unsafe path in zip (absolute or with '..'); not extracted"
    if info.flag_bits & 0x1:
        return "encrypted (password-protected) zip member; upload it unencrypted"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link in zip; not followed"
    if info.file_size > limits.max_file_bytes:
        return (
            f"{format_bytes(info.file_size)} uncompressed; the limit per file is "
            f"{format_bytes(limits.max_file_bytes)}"
        )
    return _ratio_problem(info, limits=limits)


def _ratio_problem(info: zipfile.ZipInfo, *, limits: LoadLimits) -> str:
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= _RATIO_CHECK_FROM and ratio > limits.max_zip_ratio:
        return (
            f"compressed {ratio:.0f}:1, above the {limits.max_zip_ratio:.0f}:1 "
            "limit (possible zip bomb)"
        )
    return ""


def _is_unsafe(filename: str) -> bool:
    name = filename.replace("\\", "/")
    return name.startswith("/") or bool(_DRIVE.match(name)) or ".." in name.split("/")


def _copy_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, budget: ByteBudget, target: Path
) -> str:
    """Copy in chunks, never more than the member declares; "" or why it failed."""
    try:
        budget.take(info.file_size)
        with zf.open(info) as src, target.open("wb") as dst:
            _copy_bounded(src, dst, limit=info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        target.unlink(missing_ok=True)
        return f"corrupt zip member, could not be decompressed ({exc})"
    except (NotImplementedError, ValueError) as exc:  # e.g. an unknown compression
        target.unlink(missing_ok=True)
        return f"could not be extracted ({exc})"
    return ""


def _copy_bounded(src: IO[bytes], dst: IO[bytes], *, limit: int) -> None:
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        if written > limit:
            raise ValueError(
                "it expands beyond its declared size (corrupt or zip bomb)"
            )
        dst.write(chunk)


# --- archives of training data: the folder tree is kept ------------------------------
@dataclass
class TreeExtracted:
    """A data archive unpacked with its folders: ``root`` is the folder to index
    (the destination, or the one folder that holds everything)."""

    root: Path
    files: int


def data_archive_check(path: Path, *, limits: LoadLimits) -> list[str]:
    """Problems of a zip of training data, from its directory alone (no member is
    decompressed): empty, too many files or bytes, unsafe, encrypted or linked
    members. A data set must be what the archive says, so one bad member refuses
    the archive; at most five problems are named."""
    zf, _, problems = _read_data_directory(path, limits=limits)
    if zf is not None:
        zf.close()
    return problems


def extract_data_archive(
    path: Path, dest: Path, *, limits: LoadLimits
) -> TreeExtracted:
    """Unpack a data archive into ``dest`` with its folder tree, skipping
    operating-system clutter, after the checks of :func:`data_archive_check` and
    one for free disk space. Raises ValueError naming what is wrong (the caller
    removes ``dest``)."""
    zf, infos, problems = _read_data_directory(path, limits=limits)
    if zf is None:
        raise ValueError("; ".join(problems))
    with zf:
        dest.mkdir(parents=True, exist_ok=True)
        _check_free_space(infos, dest)
        budget = ByteBudget(limit=limits.max_total_bytes)
        for info in infos:
            target = dest.joinpath(*_member_parts(info.filename))
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file and a folder of the same name
                raise ValueError(f"{info.filename}: cannot be written ({exc})") from exc
            reason = _copy_member(zf, info, budget=budget, target=target)
            if reason:
                raise ValueError(f"{info.filename}: {reason}")
    return TreeExtracted(root=_single_folder(dest), files=len(infos))


def _read_data_directory(
    path: Path, *, limits: LoadLimits
) -> tuple[zipfile.ZipFile | None, list[zipfile.ZipInfo], list[str]]:
    """Open the archive and read its data members once: (open zip, members, [])
    or (None, [], problems) when it cannot be a data set."""
    listed = _listed_entries(path)
    if listed > _MAX_ENTRIES_PER_FILE * limits.max_files + _SPARE_ENTRIES:
        return (
            None,
            [],
            [f"it lists about {listed} entries; at most {limits.max_files} files"],
        )
    try:
        zf = zipfile.ZipFile(path)
        infos = _data_members(zf)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return None, [], [f"not a readable zip archive ({exc})"]
    budget = ByteBudget(limit=limits.max_total_bytes)
    whole = _zip_problem(infos, limits=limits, budget=budget, room=limits.max_files)
    problems = (
        [whole]
        if whole
        else [
            f"{info.filename}: {reason}"
            for info in infos
            if (reason := _member_problem(info, limits=limits))
        ]
    )
    if problems:
        zf.close()
        return None, [], problems[:5]
    return zf, infos, []


def _check_free_space(infos: list[zipfile.ZipInfo], dest: Path) -> None:
    needed = sum(i.file_size for i in infos)
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise ValueError(
            f"unpacking needs {format_bytes(needed)} but only {format_bytes(free)} "
            f"is free on the disk of {dest}"
        )


def _data_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [
        i for i in zf.infolist() if not i.is_dir() and not is_system_file(i.filename)
    ]


def _member_parts(filename: str) -> list[str]:
    return [p for p in filename.replace("\\", "/").split("/") if p not in ("", ".")]


def _single_folder(folder: Path) -> Path:
    """Descend while a folder holds exactly one folder and no files: a zip made of
    a folder (``brain-ct/Normal/...``) indexes from ``brain-ct``."""
    while True:
        entries = list(folder.iterdir())
        if len(entries) != 1 or not entries[0].is_dir():
            return folder
        folder = entries[0]
