"""PNG, JPEG, BMP and TIFF slices (Pillow): one study per upload, ordered by name."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

from ml.io.limits import LimitExceeded, LoadLimits, check_pixels
from ml.io.plan import Candidate, Expected, rejected_only, split_majority
from ml.io.resample import reduce_slice, reduced_size
from ml.io.sources import Source
from ml.io.types import LoadResult, Rejected, SliceInfo, StudyMetadata

_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")  # JPEG also opens multi-picture (MPO)
_HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that turn the image a quarter
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {  # EXIF orientation -> what shows the image upright (as ImageOps does)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DIGITS = re.compile(r"\d+")
_LABEL = "PNG/JPEG/BMP/TIFF"
_END_MARKS = {"jpeg": b"\xff\xd9", "png": b"IEND"}  # end of image / last chunk
_TAIL_BYTES = 64
DEFAULT_IMAGE_LIMITS = LoadLimits()


@dataclass(frozen=True)
class _Probe:
    source: Source
    size: tuple[int, int]  # (H, W) after EXIF orientation
    bits: int  # 8 or 16
    pages: int


def plan_images(sources: list[Source], *, limits: LoadLimits) -> Candidate:
    """Plan a study from image files, reading headers only.

    Slices are ordered by the last number in the file name (``12 (3).jpg`` is slice
    3), files without a number last, by name. Slices whose size or bit depth differ
    from the majority are set aside.
    """
    probes, rejected = _probe_all(sources, limits=limits)
    if not probes:
        return rejected_only(kind="image", label=_LABEL, rejected=rejected)
    probes.sort(key=lambda p: slice_order_key(p.source.name))
    bits, probes, odd_bits = split_majority(probes, key=lambda p: p.bits)
    rejected += [_odd_depth(p, bits=bits) for p in odd_bits]
    size, probes, odd_size = split_majority(probes, key=lambda p: p.size)
    rejected += [_odd_size(p, size=size) for p in odd_size]
    return Candidate(
        kind="image",
        label=_LABEL,
        sources=[p.source for p in probes],
        shape=(len(probes), *reduced_size(size, max_side=limits.max_side)),
        load=lambda: _load(probes, bits=bits, limits=limits),
        expected=_expected(probes, bits=bits),
        rejected=rejected,
        warnings=_warnings(probes),
        spot_check=lambda: _spot_check(probes, limits=limits),
        stored_size=size,
    )


def slice_order_key(name: str) -> tuple:
    """Sort key: last number of the base name, then the name in natural order."""
    base = name.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base[1:] else base
    numbers = _DIGITS.findall(stem)
    natural = [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", base)]
    return (0, int(numbers[-1]), natural) if numbers else (1, 0, natural)


_truncation_lock = threading.Lock()


@contextlib.contextmanager
def _refusing_truncated_images() -> Iterator[None]:
    """Pillow's LOAD_TRUNCATED_IMAGES is process-wide, and some libraries turn it on
    at import (WeasyPrint does); a cut-off scan must still be refused, not silently
    completed with grey."""
    with _truncation_lock:
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


def read_image(
    path: str | os.PathLike[str],
    *,
    limits: LoadLimits = DEFAULT_IMAGE_LIMITS,
    max_side: int | None = None,
) -> np.ndarray:
    """Grayscale pixels of a PNG/JPEG/BMP/TIFF file: (H, W) float32, stored values.

    EXIF orientation is applied; colour is converted to luminance (ITU-R 601-2);
    alpha is dropped. With ``max_side``, an image whose longest side is longer is
    reduced to it by area averaging (a JPEG is decoded at a reduced scale first).
    The declared size is checked against ``limits`` before any pixel is decoded.
    Raises ValueError for other formats or oversized images.
    """
    with _refusing_truncated_images(), Image.open(path, formats=_FORMATS) as im:
        _check_pixels(im.size, limits=limits)
        orientation = _orientation(im)
        size = _oriented_size(im, orientation)
        target = size if max_side is None else reduced_size(size, max_side=max_side)
        if target != size and im.format == "JPEG" and im.mode in ("L", "RGB"):
            # DCT scaling: the decoder itself skips detail the result cannot hold.
            swapped = orientation in _SWAPS_AXES
            im.draft("L", (target[0], target[1]) if swapped else (target[1], target[0]))
        im.load()
        method = _TRANSPOSE.get(orientation)
        oriented = im.transpose(method) if method is not None else im.copy()
    if oriented.mode not in _HIGH_DEPTH_MODES and oriented.mode != "L":
        oriented = oriented.convert("L")
    return reduce_slice(np.asarray(oriented), size=target)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation, read from the header only. A PNG's eXIf chunk counts
    only before the pixel data: Pillow would decode the whole image to look for
    one after it, and the header probe must not decode 30 slices of 4096 x 4096."""
    if im.format == "PNG":
        raw = im.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
    else:
        exif = im.getexif()
    value = exif.get(_EXIF_ORIENTATION)
    return value if isinstance(value, int) else 1


def _oriented_size(im: Image.Image, orientation: int) -> tuple[int, int]:
    """(H, W) once the EXIF orientation is applied."""
    width, height = im.size
    if orientation in _SWAPS_AXES:
        width, height = height, width
    return height, width


def _probe_all(
    sources: list[Source], *, limits: LoadLimits
) -> tuple[list[_Probe], list[Rejected]]:
    probes, rejected = [], []
    for source in sources:
        try:
            probes.append(_probe(source, limits=limits))
        except Exception as e:  # Pillow raises many types on damaged files
            rejected.append(Rejected(source.name, _unreadable(source, e)))
    return probes, rejected


def _probe(source: Source, *, limits: LoadLimits) -> _Probe:
    with Image.open(source.path, formats=_FORMATS) as im:
        _check_pixels(im.size, limits=limits)
        bits = 16 if im.mode in _HIGH_DEPTH_MODES else 8
        size = _oriented_size(im, _orientation(im))
        return _Probe(source, size, bits, getattr(im, "n_frames", 1))


def _check_pixels(size: tuple[int, int], *, limits: LoadLimits) -> None:
    check_pixels(rows=size[1], columns=size[0], limits=limits)


def _unreadable(source: Source, exc: Exception) -> str:
    if isinstance(exc, LimitExceeded):
        return str(exc)
    if isinstance(exc, Image.DecompressionBombError):
        return f"image too large to decode safely ({exc})"
    return f"corrupt or unsupported {source.sniffed.upper()} image ({exc})"


def _load(probes: list[_Probe], *, bits: int, limits: LoadLimits) -> LoadResult:
    pixels, kept, rejected = [], [], []
    for probe in probes:
        try:
            pixels.append(
                read_image(probe.source.path, limits=limits, max_side=limits.max_side)
            )
            kept.append(probe)
        except Exception as exc:  # as in _probe_all
            rejected.append(Rejected(probe.source.name, _unreadable(probe.source, exc)))
    expected = _expected(kept, bits=bits)
    return LoadResult(
        volume=np.stack(pixels) if pixels else np.zeros((0, 0, 0), np.float32),
        slices=expected.slices,
        metadata=expected.metadata,
        rejected=rejected,
        consumed=[p.source.name for p in kept],
    )


def _expected(probes: list[_Probe], *, bits: int) -> Expected:
    units = "raw16" if bits == 16 else "windowed8"
    return Expected(
        slices=[SliceInfo(source=p.source.name) for p in probes],
        metadata=StudyMetadata(source_kind="image", units=units),
    )


def _spot_check(probes: list[_Probe], *, limits: LoadLimits) -> list[Rejected]:
    """Decode the first slice, and every JPEG or PNG that looks cut off: Pillow
    reads headers lazily, so damage further on shows only when decoding."""
    suspects = probes[:1] + [p for p in probes[1:] if _looks_cut_off(p.source)]
    failed = []
    for probe in suspects:
        try:
            read_image(probe.source.path, limits=limits)
        except Exception as exc:  # as in _probe_all
            failed.append(Rejected(probe.source.name, _unreadable(probe.source, exc)))
    return failed


def _looks_cut_off(source: Source) -> bool:
    """True when a JPEG or PNG has no end marker in its last bytes: a partial copy,
    or a whole image with trailing bytes, which decoding then tells apart."""
    mark = _END_MARKS.get(source.sniffed)
    if mark is None:
        return False  # BMP and TIFF have none; their damage shows on the worker
    with source.path.open("rb") as f:
        f.seek(max(0, source.size - _TAIL_BYTES))
        return mark not in f.read()


def _odd_depth(probe: _Probe, *, bits: int) -> Rejected:
    return Rejected(
        probe.source.name,
        f"{probe.bits}-bit image among {bits}-bit images; upload one kind at a time",
    )


def _odd_size(probe: _Probe, *, size: tuple[int, int]) -> Rejected:
    (h, w), (mh, mw) = probe.size, size
    return Rejected(
        probe.source.name,
        f"image size {w}x{h} differs from the {mw}x{mh} of the other slices",
    )


def _warnings(probes: list[_Probe]) -> list[str]:
    warnings = [
        f"{p.source.name} has {p.pages} pages; only the first was read"
        for p in probes
        if p.pages > 1
    ]
    return warnings + _repeated_numbers(probes)


def _repeated_numbers(probes: list[_Probe]) -> list[str]:
    by_number = defaultdict(list)
    for probe in probes:
        key = slice_order_key(probe.source.name)
        if key[0] == 0:
            by_number[key[1]].append(probe.source.name)
    repeats = {n: names for n, names in by_number.items() if len(names) > 1}
    if not repeats:
        return []
    number, names = next(iter(repeats.items()))
    return [
        f"{len(repeats)} slice number(s) repeat (e.g. {number} in {', '.join(names)}): "
        "the files may come from more than one scan"
    ]
