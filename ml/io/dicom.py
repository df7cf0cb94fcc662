"""DICOM studies: pick one study and its axial series, order it, decode it to HU."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, pixel_array

from ml.io.dicom_header import (
    Frame,
    frames_of,
    functional_group,
    read_header,
    set_aside_reason,
)
from ml.io.dicom_meta import study_metadata
from ml.io.geometry import SAME_POSITION_MM, plane_name, slice_normal, spacing_stats
from ml.io.limits import LoadLimits
from ml.io.plan import Candidate, Expected, rejected_only, split_majority
from ml.io.resample import reduce_slice, reduced_size
from ml.io.sources import Source
from ml.io.text import clean_text
from ml.io.types import LoadResult, Rejected, SliceInfo

_LABEL = "DICOM"
_NO_POSITIONS = (
    "ImagePositionPatient or ImageOrientationPatient is missing: slices are ordered "
    "by InstanceNumber"
)

Step = Callable[[list[Frame]], tuple[list[Frame], list[Rejected]]]


def plan_dicom(
    sources: list[Source], *, limits: LoadLimits, series_uid: str | None = None
) -> Candidate:
    """Plan the study from DICOM files, reading headers only.

    Keeps the study with most image frames and, in it, the series with most axial
    frames (or the series ``series_uid`` when given), ordered foot to head by
    position along the slice normal; the study's other axial series are planned
    beside it (``Candidate.series``, in series-number order). Everything else is
    set aside with a reason.
    """
    frames, rejected = _readable_frames(sources, limits=limits)
    for step in (_drop_non_axial, _one_study):
        if not frames:
            break
        frames, dropped = step(frames)
        rejected += dropped
    if not frames:
        return rejected_only(kind="dicom", label=_LABEL, rejected=rejected)
    chosen, others, dropped = _split_series(frames, series_uid=series_uid)
    if not chosen:
        return rejected_only(kind="dicom", label=_LABEL, rejected=rejected + dropped)
    candidate = _series_candidate(chosen, limits=limits, rejected=rejected + dropped)
    candidate.series = [_series_candidate(group, limits=limits) for group in others]
    return candidate


def _series_candidate(
    frames: list[Frame], *, limits: LoadLimits, rejected: Sequence[Rejected] = ()
) -> Candidate:
    """One series' frames (not empty) as a candidate: one image size, ordered."""
    frames, dropped = _one_size(frames)
    frames, duplicates, warnings = order_frames(frames)
    size = reduced_size(frames[0].shape, max_side=limits.max_side)
    return Candidate(
        kind="dicom",
        label=_LABEL,
        sources=list(dict.fromkeys(f.source for f in frames)),
        shape=(len(frames), *size),
        load=lambda: load_frames(frames, size=size),
        expected=_expected(frames),
        rejected=[*rejected, *dropped, *duplicates],
        warnings=warnings,
        spot_check=lambda: _spot_check(frames),
        stored_size=frames[0].shape,
        series_label=series_label(frames[0].ds),
    )


def order_frames(
    frames: list[Frame],
) -> tuple[list[Frame], list[Rejected], list[str]]:
    """Frames foot to head, duplicates removed, and a warning if order is a guess."""
    frames, rejected = _drop_same_image(frames)
    if frames and all(
        f.position is not None and f.orientation is not None for f in frames
    ):
        frames.sort(key=lambda f: (position_mm(f), f.instance_number or 0))
        frames, same_place = _drop_same_position(frames)
        return frames, rejected + same_place, []
    frames.sort(key=_instance_order)
    return frames, rejected, [_NO_POSITIONS] if len(frames) > 1 else []


def position_mm(frame: Frame) -> float | None:
    """Position (mm) of a frame along its superior-pointing slice normal."""
    if frame.position is None or frame.orientation is None:
        return None
    return float(frame.position @ slice_normal(orientation=frame.orientation))


def load_frames(
    frames: list[Frame], *, size: tuple[int, int] | None = None
) -> LoadResult:
    """Decode ordered frames to a (D, H, W) float32 volume after the modality LUT;
    each frame reduced to ``size`` (H, W) when given (see ml.io.resample)."""
    volume = np.empty((len(frames), *(size or frames[0].shape)), np.float32)
    decoded, failed = _decode_into(volume, frames=frames)
    kept = [f for f, ok in zip(frames, decoded, strict=True) if ok]
    expected = _expected(kept)
    return LoadResult(
        volume=volume if all(decoded) else volume[np.array(decoded, dtype=bool)],
        slices=expected.slices,
        metadata=expected.metadata,
        rejected=failed,
        consumed=list(dict.fromkeys(f.source.name for f in kept)),
        warnings=expected.warnings,
    )


def _expected(frames: list[Frame]) -> Expected:
    """Slices, metadata and spacing warnings of ordered frames, from headers."""
    positions = [position_mm(f) for f in frames]
    return Expected(
        slices=[_slice_info(f) for f in frames],
        metadata=study_metadata(frames, positions=positions),
        warnings=_spacing_warnings(positions),
    )


def _spacing_warnings(positions: list[float | None]) -> list[str]:
    if len(positions) < 3 or any(p is None for p in positions):
        return []
    values = np.array(positions, dtype=np.float64)
    gaps = np.diff(values)
    spacing, uneven = spacing_stats(positions=values)
    if not uneven or spacing is None:
        return []
    return [
        f"uneven slice spacing: gaps from {gaps.min():.2f} to {gaps.max():.2f} mm "
        f"(median {spacing:.2f} mm); slices may be missing"
    ]


def _readable_frames(
    sources: list[Source], *, limits: LoadLimits
) -> tuple[list[Frame], list[Rejected]]:
    frames, rejected = [], []
    for source in sources:
        try:
            frames += _frames_to_use(source, limits=limits)
        except ValueError as exc:
            rejected.append(Rejected(source.name, str(exc)))
    return frames, rejected


def _frames_to_use(source: Source, *, limits: LoadLimits) -> list[Frame]:
    """The frames of one file, or ValueError with the reason to set it aside."""
    ds = read_header(source)
    try:
        reason = set_aside_reason(ds, source=source, limits=limits)
        # Only now: the frame list is as long as the header says (NumberOfFrames
        # 1000000000 would take minutes), and the reason has checked that size.
        frames = [] if reason else frames_of(ds, source=source)
    except Exception as exc:  # a damaged but parseable header, e.g. a broken sequence
        raise ValueError(
            f"unusable DICOM header ({type(exc).__name__}: {exc})"
        ) from exc
    if reason:
        raise ValueError(reason)
    return frames


def _drop_non_axial(frames: list[Frame]) -> tuple[list[Frame], list[Rejected]]:
    kept, rejected = [], []
    for frame in frames:
        plane = _plane(frame)
        if plane in ("axial", None):
            kept.append(frame)
        else:
            reason = f"{plane} image, not an axial slice (set aside as a localizer)"
            rejected.append(Rejected(frame.label, reason))
    return kept, rejected


def _plane(frame: Frame) -> str | None:
    try:
        return (
            None
            if frame.orientation is None
            else plane_name(orientation=frame.orientation)
        )
    except ValueError:
        return None


def _one_study(frames: list[Frame]) -> tuple[list[Frame], list[Rejected]]:
    _, kept, others = split_majority(frames, key=lambda f: _uid(f, "StudyInstanceUID"))
    return kept, _by_file(others, _other_study)


def _other_study(frame: Frame) -> str:
    uid = _uid(frame, "StudyInstanceUID") or "missing"
    return (
        f"belongs to another study (StudyInstanceUID {uid}); upload one study at a time"
    )


def _split_series(
    frames: list[Frame], *, series_uid: str | None
) -> tuple[list[Frame], list[list[Frame]], list[Rejected]]:
    """The chosen series' frames, the other series' frames (each a list, in series
    number order), and, when ``series_uid`` names no series here, every frame set
    aside."""
    key = _series_key
    if series_uid:
        chosen = [f for f in frames if key(f) == series_uid]
        if not chosen:
            reason = f"not in series {clean_text(series_uid)}, the series asked for"
            return [], [], _by_file(frames, lambda _: reason)
    else:
        _, chosen, _ = split_majority(frames, key=key)
    groups: dict[str, list[Frame]] = defaultdict(list)
    for frame in frames:
        if key(frame) != key(chosen[0]):
            groups[key(frame)].append(frame)
    others = sorted(groups.values(), key=lambda group: _series_order(group[0].ds))
    return chosen, others, []


def _series_key(frame: Frame) -> str:
    return _uid(frame, "SeriesInstanceUID")


def _series_order(ds: Dataset) -> tuple:
    number = ds.get("SeriesNumber")
    try:
        number = int(number)
    except (TypeError, ValueError):
        number = None
    return (number is None, number or 0, clean_text(ds.get("SeriesInstanceUID")))


def series_label(ds: Dataset) -> str:
    """'201 "STD BRAIN 5MM"', or the SeriesInstanceUID when there is no number."""
    number, description = ds.get("SeriesNumber"), ds.get("SeriesDescription")
    label = (
        str(number) if number not in (None, "") else str(ds.get("SeriesInstanceUID"))
    )
    label, description = clean_text(label), clean_text(description)
    return f'{label} "{description}"' if description else label


def _one_size(frames: list[Frame]) -> tuple[list[Frame], list[Rejected]]:
    (rows, columns), kept, others = split_majority(frames, key=lambda f: f.shape)
    return kept, [
        Rejected(
            f.label,
            f"image size {f.shape[1]}x{f.shape[0]} differs from the {columns}x{rows} "
            "of the series' other slices",
        )
        for f in others
    ]


def _drop_same_image(frames: list[Frame]) -> tuple[list[Frame], list[Rejected]]:
    first: dict[tuple[str, int], Frame] = {}
    kept, rejected = [], []
    for frame in frames:
        key = (_uid(frame, "SOPInstanceUID"), frame.index)
        if key[0] and key in first:
            reason = f"same image as {first[key].label} (identical SOPInstanceUID)"
            rejected.append(Rejected(frame.label, reason))
        else:
            first.setdefault(key, frame)
            kept.append(frame)
    return kept, rejected


def _drop_same_position(frames: list[Frame]) -> tuple[list[Frame], list[Rejected]]:
    """Keep the first of frames (sorted, all positioned) that share a position."""
    kept, rejected = [frames[0]], []
    last = _placed(frames[0])
    for frame in frames[1:]:
        here = _placed(frame)
        if abs(here - last) < SAME_POSITION_MM:
            reason = (
                f"duplicate slice: same position ({here:.2f} mm) as {kept[-1].label}"
            )
            rejected.append(Rejected(frame.label, reason))
        else:
            kept.append(frame)
            last = here
    return kept, rejected


def _placed(frame: Frame) -> float:
    position = position_mm(frame)
    if position is None:
        raise ValueError(f"{frame.label} has no position")  # callers check first
    return position


def _instance_order(frame: Frame) -> tuple:
    number = frame.instance_number
    return (number is None, number or 0, frame.source.name, frame.index)


def _decode_into(
    volume: np.ndarray, *, frames: list[Frame]
) -> tuple[list[bool], list[Rejected]]:
    """Fill ``volume[i]`` with frame i, one file at a time; which frames worked."""
    by_file: dict[Source, list[int]] = defaultdict(list)
    for i, frame in enumerate(frames):
        by_file[frame.source].append(i)
    decoded, failed = [False] * len(frames), []
    for source, indices in by_file.items():
        try:
            _decode_file(volume, frames=frames, indices=indices)
        except Exception as exc:  # decoders raise many types on damaged data
            failed.append(Rejected(source.name, _undecodable(exc)))
            continue
        for i in indices:
            decoded[i] = True
    return decoded, failed


def _decode_file(
    volume: np.ndarray, *, frames: list[Frame], indices: list[int]
) -> None:
    ds = frames[indices[0]].ds
    stored = pixel_array(ds).reshape(-1, *frames[indices[0]].shape)
    for i in indices:
        index = frames[i].index
        hu = _rescale(stored[index], ds=ds, index=index)
        volume[i] = reduce_slice(hu, size=volume.shape[1:])


def _spot_check(frames: list[Frame]) -> list[Rejected]:
    """Decode the first frame of each transfer syntax, alone: a series that its
    decoders cannot read (a codec not installed, a scanner's malformed stream) fails
    on every slice, so one slice tells, at the cost of one slice."""
    first: dict[str, Frame] = {}
    for frame in frames:
        first.setdefault(_syntax_of(frame), frame)
    failed = []
    for frame in first.values():
        try:
            stored = pixel_array(frame.ds, index=frame.index)
            _rescale(stored, ds=frame.ds, index=frame.index)
        except Exception as exc:  # as in _decode_into
            failed.append(Rejected(frame.source.name, _undecodable(exc)))
    return failed


def _syntax_of(frame: Frame) -> str:
    return str(frame.ds.file_meta.get("TransferSyntaxUID", ""))


def _undecodable(exc: Exception) -> str:
    if isinstance(exc, NotFinite):
        return str(exc)
    return f"pixel data could not be decoded ({type(exc).__name__}: {exc})"


class NotFinite(ValueError):
    """Decoded pixels hold NaN or infinity; the message is the reason to show."""


def _rescale(stored: np.ndarray, *, ds: Dataset, index: int) -> np.ndarray:
    """Stored values to modality units (HU for CT), per-frame for enhanced files."""
    item = functional_group(
        ds, index=index, sequence="PixelValueTransformationSequence"
    )
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        rescaled = np.asarray(
            apply_modality_lut(stored, item if item is not None else ds),
            dtype=np.float32,
        )
    if not np.isfinite(rescaled).all():
        raise NotFinite(
            "pixel values are not finite numbers after rescale "
            "(NaN or infinite; check RescaleSlope, RescaleIntercept and the pixel data)"
        )
    return rescaled


def _slice_info(frame: Frame) -> SliceInfo:
    return SliceInfo(
        source=frame.source.name,
        frame=frame.index,
        position_mm=position_mm(frame),
        instance_number=frame.instance_number,
        sop_instance_uid=_uid(frame, "SOPInstanceUID") or None,
    )


def _uid(frame: Frame, keyword: str) -> str:
    return clean_text(frame.ds.get(keyword) or "")


def _by_file(frames: list[Frame], reason: Callable[[Frame], str]) -> list[Rejected]:
    """One rejection per file (not per frame) when whole files are set aside."""
    first: dict[Source, Frame] = {}
    for frame in frames:
        first.setdefault(frame.source, frame)
    return [Rejected(source.name, reason(frame)) for source, frame in first.items()]
