"""The one place where the portal calls ml/. Django tests mock this module.

Web processes only read uploads (no TensorFlow); workers analyse studies. The model is
loaded lazily, once per worker process, and reloaded when the active version changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from ml import display
from ml import io as ml_io
from ml.display import CONTOUR_RGBA
from ml.inference.results import OutsideModelScope
from ml.io import LoadLimits, LoadResult, StudyLoadError, UploadCheck, load_study
from ml.preprocess import WINDOW_PRESETS

__all__ = [
    "CONTOUR_RGBA",
    "Analysis",
    "OutsideModelScope",
    "StudyLoadError",
    "analyse",
    "check_upload",
    "overlay_png",
    "read_upload",
]


@dataclass
class Analysis:
    """What the AI found in one study."""

    label: str
    probability: float
    confidence: float
    threshold: float
    slice_probabilities: list[float]
    suspicious_slices: list[int]
    stroke_type: str = ""
    type_probabilities: dict[str, float] = field(default_factory=dict)
    heatmaps: dict[int, np.ndarray] = field(default_factory=dict)  # (H, W) in [0, 1]
    read_slices: list[bool] = field(default_factory=list)  # [] = all were read
    timings: dict[str, float] = field(default_factory=dict)
    #: A segmenting model's lesion volume estimate (mL); None when it does not
    #: segment or the study lacks pixel spacing and slice positions.
    volume_ml: float | None = None


def upload_limits() -> LoadLimits:
    return LoadLimits(
        max_files=settings.UPLOAD_MAX_FILES,
        max_total_bytes=settings.UPLOAD_MAX_BYTES,
        max_slices=settings.UPLOAD_MAX_SLICES,
        max_study_pixels=settings.UPLOAD_MAX_STUDY_PIXELS,
    )


def check_upload(paths: Sequence[Path], *, names: Mapping[str, str]) -> UploadCheck:
    """Validate one study for the web request: headers and a sample slice, no volume.

    Says what read_upload will return (slices, metadata, files set aside, warnings);
    raises StudyLoadError with per-file reasons.
    """
    return ml_io.check_upload(
        [str(p) for p in paths],
        limits=upload_limits(),
        names={str(k): v for k, v in names.items()},
    )


def read_upload(
    paths: Sequence[Path], *, names: Mapping[str, str], series_uid: str | None = None
) -> LoadResult:
    """Read one study with all its pixels (workers); raises StudyLoadError with
    per-file reasons. ``series_uid`` names the DICOM series to read (the one chosen
    at upload, or another series kept for the viewer); without it, ml.io chooses
    as at upload."""
    return load_study(
        [str(p) for p in paths],
        limits=upload_limits(),
        names={str(k): v for k, v in names.items()},
        series_uid=series_uid or None,
    )


_lock = threading.Lock()
_loaded: dict[str, object] = {}


def _predictor(model_path: str, sha256: str):
    """The worker's predictor for one model version, loaded once and kept while that
    version is the one asked for."""
    with _lock:
        if sha256 not in _loaded:
            from ml.inference import Predictor  # TensorFlow loads here, after fork

            _loaded.clear()
            _loaded[sha256] = Predictor.load(model_path)
        return _loaded[sha256]


def warm_up(*, model_path: str, model_sha256: str) -> None:
    """Load a model version now, so the first study does not wait for it."""
    _predictor(model_path, model_sha256)


def analyse(
    *,
    load_result: LoadResult,
    model_path: str,
    model_sha256: str,
    heatmap_count: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> Analysis:
    """Predict per slice and per study, and explain the most suspicious slices.

    Raises OutsideModelScope when the study is readable but not what the model was
    made for (e.g. not a head CT)."""
    predictor = _predictor(model_path, model_sha256)
    prediction = predictor.predict(load_result, progress=progress)
    heatmaps = predictor.explain(
        load_result, slices=_explained_slices(predictor, prediction, heatmap_count)
    )
    return Analysis(
        label=prediction.label,
        probability=float(prediction.study_probability),
        confidence=float(prediction.confidence),
        threshold=float(prediction.threshold),
        slice_probabilities=[float(p) for p in prediction.slice_probabilities],
        suspicious_slices=[int(i) for i in prediction.top_slices],
        stroke_type=prediction.stroke_type or "",
        type_probabilities=dict(prediction.type_probabilities or {}),
        heatmaps=dict(heatmaps),
        read_slices=list(prediction.read_slices or []),
        timings=dict(prediction.timings or {}),
        volume_ml=prediction.volume_ml,
    )


#: A lesion map costs milliseconds (no gradients): draw it on this many of the most
#: suspicious slices, so a bleed spanning several slices is outlined on each.
LESION_MAP_SLICES = 12
#: A segmenting model's maps are its own per-pixel output: outline the lesion on
#: every read slice, up to this many (a thin-slice study has hundreds).
SEGMENTATION_SLICES = 64


def _explained_slices(predictor, prediction, heatmap_count: int) -> list[int]:
    kind = predictor.card.extra.get("explanation")
    if kind not in ("lesion_map", "segmentation"):
        return list(prediction.top_slices[:heatmap_count])
    cap = SEGMENTATION_SLICES if kind == "segmentation" else LESION_MAP_SLICES
    p = np.asarray(prediction.slice_probabilities)
    read = np.asarray(prediction.read_slices or [True] * len(p), dtype=bool)
    order = np.argsort(-p, kind="stable")[: max(heatmap_count, cap)]
    return [int(i) for i in order if p[i] > 0 and read[i]]  # 0: not read


def overlay_png(heatmap: np.ndarray, *, card: Mapping | None) -> bytes | None:
    """The overlay the viewer lays over one slice, as the model card's explanation
    asks: a lesion outline for a segmenting model (None when nothing on the slice
    reaches the contour level), a colour map otherwise (None when it is blank)."""
    extra = (card or {}).get("extra") or {}
    if extra.get("explanation") == "segmentation":
        return contour_png(heatmap, level=contour_level(card))
    return heatmap_png(heatmap)


def contour_level(card: Mapping | None) -> float:
    """The pixel probability at which a segmenting model's lesion is outlined."""
    extra = (card or {}).get("extra") or {}
    try:
        return float(extra.get("contour_level", 0.5))
    except (TypeError, ValueError):
        return 0.5


def contour_png(lesion: np.ndarray, *, level: float = 0.5) -> bytes | None:
    """An RGBA PNG of :func:`ml.display.contour_rgba`: the outline of ``lesion >=
    level`` over a (H, W) probability map; None when no pixel reaches ``level``."""
    rgba = display.contour_rgba(lesion, level=level)
    return None if rgba is None else _png(rgba)


def heatmap_png(heatmap: np.ndarray) -> bytes | None:
    """An RGBA PNG of :func:`ml.display.heatmap_rgba`: a (H, W) map in [0, 1] as a
    colour map whose transparency follows the map, so the viewer can lay it over the
    slice at any opacity; None when nothing of the map would be visible (such a map
    is not stored, so no page calls the slice "mapped")."""
    rgba = display.heatmap_rgba(heatmap)
    return None if rgba is None else _png(rgba)


#: The viewer's window buttons: (centre, width) in whole Hounsfield units.
VIEWER_WINDOWS = {
    name: (int(centre), int(width)) for name, (centre, width) in WINDOW_PRESETS.items()
}


def slice_pixels(
    volume: np.ndarray,
    *,
    index: int,
    units: str,
    window: tuple[float, float] | None,
) -> np.ndarray:
    """One slice of a (D, H, W) volume as (H, W) uint8 grey: windowed (centre,
    width) for Hounsfield units (percentiles without a window), as stored for images
    that arrived already windowed, and scaled by percentiles otherwise."""
    centre, width = window if window is not None else (None, None)
    return display.window_slice(volume[index], units=units, centre=centre, width=width)


def slice_png(
    volume: np.ndarray,
    *,
    index: int,
    units: str,
    window: tuple[float, float] | None,
) -> bytes:
    """:func:`slice_pixels` as an 8-bit grey PNG, for the viewer."""
    return _png(slice_pixels(volume, index=index, units=units, window=window))


def viewer_encoding(volume: np.ndarray, *, units: str) -> dict[str, float]:
    """How the viewer turns its int16 slice data back into ``units``."""
    from ml import viewer_data

    return viewer_data.slice_encoding(volume, units=units).as_dict()


def viewer_slices(
    volume: np.ndarray, *, start: int, stop: int, encoding: dict[str, float]
) -> bytes:
    """Slices ``start``..``stop`` of a (D, H, W) volume as little-endian int16."""
    from ml import viewer_data

    return viewer_data.encode_slices(
        volume, start=start, stop=stop, encoding=viewer_data.SliceEncoding(**encoding)
    )


def viewer_window(volume: np.ndarray, *, units: str) -> tuple[float, float]:
    from ml import viewer_data

    return viewer_data.default_window(volume, units=units)


def edge_labels(orientation) -> dict[str, str] | None:
    """The orientation markers of a slice from ImageOrientationPatient (6 floats),
    or None when it is unknown or degenerate."""
    from ml.io.geometry import edge_labels as labels

    if not orientation or len(orientation) != 6:
        return None
    try:
        return labels(orientation=np.asarray(orientation, dtype=float))
    except ValueError:
        return None


def _png(pixels: np.ndarray) -> bytes:
    """(H, W) grey or (H, W, 4) RGBA uint8 as PNG."""
    import cv2

    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"could not encode a {pixels.shape} image as PNG")
    return encoded.tobytes()
