"""Index a folder of labelled images into a manifest, and split it without leakage.

Every image belongs to a *group* (its patient or scan): PatientID/StudyInstanceUID
for DICOM, a file-name pattern otherwise (``N (k).jpg`` is slice k of scan N).
Exact duplicates (same sha256) and near duplicates (perceptual hash, confirmed on
pixels) merge their groups into *split groups* with a union-find; every split keeps a
split group on one side, so neither neighbouring slices nor copied images leak.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

#: Class-folder names (lower case) and the label each one stands for.
CLASS_FOLDERS: dict[str, str] = {
    "normal": "normal",
    "stroke": "stroke",
    "hemorrhagic": "hemorrhagic",
    "haemorrhagic": "hemorrhagic",
    "ischemic": "ischemic",
    "ischaemic": "ischemic",
}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
SKIPPED_FOLDERS = frozenset({"masks"})  # lesion masks written beside the images
#: Files beside the images that are silently ignored (labels, masks, notes).
SIDECAR_SUFFIXES = frozenset({".csv", ".npy", ".json", ".txt", ".md"})
#: ``N (k).jpg`` is slice k of scan N (brain-stroke-ct); matched on the file stem.
DEFAULT_GROUP_REGEX = r"^(?P<group>\d+)\s*\(\d+\)$"
MANIFEST_COLUMNS = ("path", "label", "group", "split_group", "sha256", "phash")
THUMB_SIDE = 32  # side of the thumbnail that confirms a perceptual-hash match


@dataclass(frozen=True)
class ManifestRow:
    """One image: ``path`` relative to the data folder, in POSIX form."""

    path: str
    label: str
    group: str
    sha256: str
    phash: str  # 64-bit imagehash.phash of the brain-windowed image, hex
    split_group: str = ""  # the group after merging duplicates; "" = group


@dataclass(frozen=True)
class DuplicateReport:
    """Exact duplicates as clusters of paths; near duplicates as scored pairs."""

    exact: list[tuple[str, ...]] = field(default_factory=list)
    near: list[tuple[str, str, int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class IndexResult:
    """Manifest rows (sorted by path), duplicates, warnings and skipped files."""

    rows: list[ManifestRow]
    duplicates: DuplicateReport
    warnings: list[str]
    skipped: list[tuple[str, str]]  # (path, reason)


@dataclass(frozen=True)
class Fold:
    """Row indices of one cross-validation fold."""

    train: tuple[int, ...]
    val: tuple[int, ...]


@dataclass(frozen=True)
class Split:
    """Row indices of a train/validation/test split."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


@dataclass(frozen=True)
class _FileInfo:
    path: str
    sha256: str = ""
    phash: str = ""
    thumb: bytes = b""
    dicom_group: str = ""
    error: str = ""


# --- reading one file (runs in worker processes) ----------------------------------


def _is_dicom(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or head[128:132] == b"DICM"


def _describe_file(path_and_rel: tuple[str, str]) -> _FileInfo:
    """sha256, perceptual hash, thumbnail and (DICOM) group of one file."""
    path, rel = Path(path_and_rel[0]), path_and_rel[1]
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        if _is_dicom(path, data[:132]):
            image, group = _dicom_image(path)
        else:
            image, group = _raster_image(data), ""
    except Exception as exc:  # any unreadable file is reported, not fatal
        return _FileInfo(rel, sha, error=f"unreadable: {exc}")
    return _FileInfo(rel, sha, _phash(image), _thumbnail(image), group)


def _dicom_image(path: Path) -> tuple[np.ndarray, str]:
    import pydicom

    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise ValueError("DICOM object without pixel data")
    if "LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])]:
        raise ValueError("localizer (scout) image, not an axial slice")
    pixels = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[len(pixels) // 2]
    slope, intercept = (
        float(ds.get("RescaleSlope", 1)),
        float(ds.get("RescaleIntercept", 0)),
    )
    values = pixels.astype(np.float32) * slope + intercept
    group = "/".join(str(ds.get(k, "")) for k in ("PatientID", "StudyInstanceUID"))
    return _to_display(values, is_ct=ds.get("Modality", "") == "CT"), group


def _raster_image(data: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a decodable image")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype == np.uint8:
        return image  # already windowed for display: never windowed again
    return _to_display(image.astype(np.float32), is_ct=False)


def _to_display(values: np.ndarray, *, is_ct: bool) -> np.ndarray:
    from ml.preprocess import percentile_normalise, to_uint8, window_by_name

    unit = (
        window_by_name(values, name="brain") if is_ct else percentile_normalise(values)
    )
    return to_uint8(unit)


def _phash(image: np.ndarray) -> str:
    import imagehash
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(image)))


def _thumbnail(image: np.ndarray) -> bytes:
    import cv2

    small = cv2.resize(image, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    return small.astype(np.uint8).tobytes()


# --- discovery and grouping -------------------------------------------------------


def _label_of(rel: Path) -> str | None:
    for part in rel.parts[:-1]:
        if part.lower() in CLASS_FOLDERS:
            return CLASS_FOLDERS[part.lower()]
    return None


def _candidate_files(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p.lower() in SKIPPED_FOLDERS for p in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() not in SIDECAR_SUFFIXES:
            yield path


def _looks_like_image(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES:
        return True
    if suffix:
        return False
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _discover(root: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(relative path, label) of every image under a class folder, and the skipped."""
    found, skipped = [], []
    for path in _candidate_files(root):
        rel = path.relative_to(root)
        if not _looks_like_image(path):
            skipped.append((rel.as_posix(), "not an image or DICOM file"))
        elif (label := _label_of(rel)) is None:
            skipped.append((rel.as_posix(), "not under a class folder"))
        else:
            found.append((rel.as_posix(), label))
    return found, skipped


def compile_group_regex(pattern: str | None) -> re.Pattern[str]:
    """Compile a file-name group pattern; it must have a named group ``group``."""
    try:
        regex = re.compile(pattern or DEFAULT_GROUP_REGEX)
    except re.error as exc:
        raise ValueError(f"invalid group regex {pattern!r}: {exc}") from exc
    if "group" not in regex.groupindex:
        raise ValueError(f"group regex {pattern!r} needs a named group (?P<group>...)")
    return regex


def _file_group(rel: str, regex: re.Pattern[str]) -> str | None:
    match = regex.search(Path(rel).stem)
    return f"scan {match['group']}" if match else None


# --- duplicates and split groups --------------------------------------------------


def _hash_ints(hexes: Sequence[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)


def _near_pairs(hashes: np.ndarray, threshold: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) with i < j and Hamming distance <= threshold.

    Vectorised all-pairs XOR + popcount in row blocks: about a nanosecond a pair, so
    thousands of images take milliseconds and 50k images seconds, with memory
    bounded by the block size.
    """
    pairs: list[tuple[int, int, int]] = []
    block = 1024
    for start in range(0, len(hashes), block):
        chunk = hashes[start : start + block, None] ^ hashes[None, :]
        dist = np.bitwise_count(chunk)
        rows, cols = np.nonzero(dist <= threshold)
        keep = cols > rows + start
        pairs += zip(
            (rows[keep] + start).tolist(),
            cols[keep].tolist(),
            dist[rows[keep], cols[keep]].tolist(),
            strict=True,
        )
    return pairs


def _correlation(a: bytes, b: bytes) -> float:
    x = np.frombuffer(a, np.uint8).astype(np.float64)
    y = np.frombuffer(b, np.uint8).astype(np.float64)
    if x.std() == 0 or y.std() == 0:
        return 1.0 if np.array_equal(x, y) else 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _find_duplicates(
    infos: Sequence[_FileInfo], *, near_threshold: int, min_correlation: float
) -> DuplicateReport:
    """Exact (same sha256) and near duplicates among described files.

    A near duplicate has a perceptual-hash distance <= ``near_threshold`` and, unless
    ``min_correlation`` is 0, thumbnails correlated at least that much: on head CT the
    64-bit phash mostly encodes the head's outline, and different patients' slices
    often lie within distance 4.
    """
    by_sha: dict[str, list[int]] = defaultdict(list)
    for i, info in enumerate(infos):
        by_sha[info.sha256].append(i)
    exact = [
        tuple(infos[i].path for i in idx) for idx in by_sha.values() if len(idx) > 1
    ]
    firsts = [idx[0] for idx in by_sha.values()]
    near = []
    hashes = _hash_ints([infos[i].phash for i in firsts])
    for a, b, dist in _near_pairs(hashes, near_threshold):
        ia, ib = firsts[a], firsts[b]
        corr = (
            _correlation(infos[ia].thumb, infos[ib].thumb) if min_correlation else 1.0
        )
        if corr >= min_correlation:
            near.append((infos[ia].path, infos[ib].path, dist, round(corr, 4)))
    return DuplicateReport(exact=sorted(exact), near=sorted(near))


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {item: item for item in items}

    def find(self, item: str) -> str:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller name becomes the root, so names are stable
            self.parent[max(ra, rb)] = min(ra, rb)


def merge_split_groups(
    rows: Sequence[ManifestRow], links: Iterable[tuple[int, int]]
) -> list[ManifestRow]:
    """Set ``split_group``: groups joined by ``links`` (pairs of row indices) merge.

    Each split group is named after its smallest group name. Returns new rows.
    """
    forest = _UnionFind(r.group for r in rows)
    for a, b in links:
        forest.union(rows[a].group, rows[b].group)
    return [replace(r, split_group=forest.find(r.group)) for r in rows]


def _duplicate_links(
    rows: Sequence[ManifestRow], report: DuplicateReport
) -> list[tuple[int, int]]:
    index = {r.path: i for i, r in enumerate(rows)}
    links = [(index[c[0]], index[p]) for c in report.exact for p in c[1:]]
    return links + [(index[a], index[b]) for a, b, _, _ in report.near]


def check_group_labels(rows: Sequence[ManifestRow]) -> None:
    """Raise ValueError naming the first group whose images carry different labels."""
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        labels[row.group].setdefault(row.label, row.path)
    for group, seen in sorted(labels.items()):
        if len(seen) > 1:
            examples = ", ".join(
                f"{path} ({label})" for label, path in sorted(seen.items())
            )
            raise ValueError(
                f"group {group!r} has images with different labels: {examples}"
            )


# --- indexing ---------------------------------------------------------------------


def _describe_all(root: Path, rels: Sequence[str], workers: int) -> list[_FileInfo]:
    jobs = [(str(root / rel), rel) for rel in rels]
    if workers <= 1 or len(jobs) < 64:
        return [_describe_file(job) for job in jobs]
    # Threads, not processes: decoding, hashing and resizing release the GIL (1.5x on
    # 2 cores), and a process pool's spawn breaks when __main__ is not a file.
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(_describe_file, jobs))


def _rows_and_warnings(
    infos: Sequence[_FileInfo], labels: dict[str, str], regex: re.Pattern[str]
) -> tuple[list[ManifestRow], list[str]]:
    rows, unmatched = [], []
    for info in infos:
        group = info.dicom_group or _file_group(info.path, regex)
        if group is None:
            unmatched.append(info.path)
            group = f"file {info.path}"
        rows.append(
            ManifestRow(info.path, labels[info.path], group, info.sha256, info.phash)
        )
    warnings = []
    if unmatched:
        warnings.append(
            f"{len(unmatched)} file name(s) do not match the group pattern; each is "
            f"its own group (e.g. {unmatched[0]})"
        )
    return rows, warnings


def index_folder(
    root: str | Path,
    *,
    group_regex: str | None = None,
    near_threshold: int = 4,
    min_correlation: float = 0.99,
    workers: int = 2,
) -> IndexResult:
    """Index images under class folders (Normal/, Stroke/, ...; any case) of ``root``.

    Groups come from DICOM headers or, for other images, from ``group_regex`` (named
    group ``group``; default: ``N (k)`` is slice k of scan N). Duplicates are found
    with :func:`_find_duplicates` and merged into split groups. Raises ValueError
    when a group mixes labels or nothing is found.
    """
    base = Path(root)
    if not base.is_dir():
        raise ValueError(f"data folder {base} does not exist")
    if near_threshold < 0 or not 0.0 <= min_correlation <= 1.0:
        raise ValueError("need near_threshold >= 0 and 0 <= min_correlation <= 1")
    regex = compile_group_regex(group_regex)
    found, skipped = _discover(base)
    labels = dict(found)
    described = _describe_all(base, [rel for rel, _ in found], workers)
    infos = [i for i in described if not i.error]
    skipped += [(i.path, i.error) for i in described if i.error]
    if not infos:
        raise ValueError(f"no labelled images under {base} (need class folders)")
    rows, warnings = _rows_and_warnings(infos, labels, regex)
    check_group_labels(rows)
    report = _find_duplicates(
        infos, near_threshold=near_threshold, min_correlation=min_correlation
    )
    rows = merge_split_groups(rows, _duplicate_links(rows, report))
    warnings += _mixed_split_group_warnings(rows)
    return IndexResult(rows, report, warnings, sorted(skipped))


def _mixed_split_group_warnings(rows: Sequence[ManifestRow]) -> list[str]:
    labels: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        labels[row.split_group].add(row.label)
    return [
        f"duplicates join groups with different labels in split group {name!r}: "
        f"{sorted(found)}"
        for name, found in sorted(labels.items())
        if len(found) > 1
    ]


# --- manifest files ---------------------------------------------------------------


def write_manifest(rows: Sequence[ManifestRow], path: str | Path) -> None:
    """Write rows as CSV with ``MANIFEST_COLUMNS``."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: getattr(row, name) for name in MANIFEST_COLUMNS})


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read a manifest CSV; a missing ``split_group`` falls back to ``group``."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "group"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"manifest {path} lacks columns {sorted(missing)}")
        names = {f.name for f in fields(ManifestRow)}
        return [
            ManifestRow(**{k: v for k, v in r.items() if k in names}) for r in reader
        ]


# --- splits -----------------------------------------------------------------------


def split_group_labels(rows: Sequence[ManifestRow]) -> dict[str, str]:
    """split group → its label: the majority label, ties to the alphabetically first.

    Only duplicates across labels make a split group mixed; the splits stratify by
    this label.
    """
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        votes[row.split_group or row.group][row.label] += 1
    return {
        name: min(count, key=lambda label: (-count[label], label))
        for name, count in votes.items()
    }


def _split_groups_by_label(rows: Sequence[ManifestRow]) -> dict[str, list[list[int]]]:
    """label → list of split groups (each a list of row indices), sorted by name."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        members[row.split_group or row.group].append(i)
    label_of = split_group_labels(rows)
    by_label: dict[str, list[list[int]]] = defaultdict(list)
    for name in sorted(members):
        by_label[label_of[name]].append(members[name])
    return dict(sorted(by_label.items()))


def _shuffled(groups: list[list[int]], rng: np.random.Generator) -> list[list[int]]:
    return [groups[i] for i in rng.permutation(len(groups))]


def grouped_kfold(rows: Sequence[ManifestRow], *, k: int, seed: int) -> list[Fold]:
    """K folds that never split a split group, stratified by the groups' labels.

    Within each label the groups are shuffled (by ``seed``) and dealt round-robin,
    so per label the folds' group counts differ by at most one. Returns k folds.
    """
    by_label = _split_groups_by_label(rows)
    total = sum(len(g) for g in by_label.values())
    if not 2 <= k <= total:
        raise ValueError(f"k must be between 2 and the {total} split groups, got {k}")
    rng = np.random.default_rng(seed)
    buckets: list[list[int]] = [[] for _ in range(k)]
    dealt = 0
    for groups in by_label.values():
        for group in _shuffled(groups, rng):
            buckets[dealt % k] += group
            dealt += 1
    everything = set(range(len(rows)))
    return [Fold(tuple(sorted(everything - set(b))), tuple(sorted(b))) for b in buckets]


def _side_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder apportionment of n groups to the sides."""
    exact = [f * n for f in fractions]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def grouped_train_val_test(
    rows: Sequence[ManifestRow],
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int,
) -> Split:
    """Train/validation/test by split group, stratified by the groups' labels.

    ``fractions`` (three, summing to 1) apply to the number of groups of each label.
    Reproducible by ``seed``.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be 3 non-negative numbers summing to 1: {fractions}"
        )
    rng = np.random.default_rng(seed)
    sides: list[list[int]] = [[], [], []]
    for groups in _split_groups_by_label(rows).values():
        shuffled = _shuffled(groups, rng)
        start = 0
        for side, count in enumerate(_side_counts(len(shuffled), fractions)):
            for group in shuffled[start : start + count]:
                sides[side] += group
            start += count
    train, val, test = (tuple(sorted(s)) for s in sides)
    return Split(train, val, test)


# --- summaries --------------------------------------------------------------------


def class_counts(rows: Sequence[ManifestRow]) -> dict[str, tuple[int, int, int]]:
    """label → (images, groups, split groups)."""
    out = {}
    for label in sorted({r.label for r in rows}):
        mine = [r for r in rows if r.label == label]
        out[label] = (
            len(mine),
            len({r.group for r in mine}),
            len({r.split_group or r.group for r in mine}),
        )
    return out


def cross_group_pairs(
    rows: Sequence[ManifestRow], report: DuplicateReport
) -> list[tuple[str, str, int, float]]:
    """The near-duplicate pairs whose two images belong to different groups."""
    group = {r.path: r.group for r in rows}
    return [pair for pair in report.near if group[pair[0]] != group[pair[1]]]
