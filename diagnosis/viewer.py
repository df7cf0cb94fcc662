"""Reads for the slice viewer (selectors): what the page's viewer needs to draw a
study itself, and the slices as compact data.

The viewer windows, pans, zooms and measures in the browser, so the server sends
each slice once, as int16 (Hounsfield units for CT, exactly), instead of a PNG per
window setting. Everything here is read from the stored volume and the study's
rows; the views check access and audit.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from django.core.cache import cache
from django.http import Http404
from django.urls import reverse

from . import ml_adapter, storage
from .models import AIResult, Series, SeriesStatus, Slice, Study

#: Slices per data request: about 4 MB of a 512 x 512 series, so the first
#: picture comes quickly and a 300-slice series takes ~20 requests.
BLOCK = 16
#: Window buttons beyond the HU presets: (label, key) for the study's own window.
STUDY_WINDOW = "study"


class NoSuchSeries(Http404):
    """A series the viewer was asked for that the study cannot show; the message
    says which it can."""


def _volume(study: Study, series: int = 0) -> tuple[Path, np.ndarray]:
    path = storage.volume_path(study.pk, series=series)
    if not path.exists():
        raise Http404("This study has no stored slices.")
    return path, np.load(path, mmap_mode="r")


def _encoding(study: Study, path: Path, volume: np.ndarray) -> dict[str, float]:
    # Reading every value of a large non-CT volume takes a moment; the answer
    # holds until the volume is written again (a reprocessed study).
    key = f"viewer-encoding:{study.pk}:{path.name}:{path.stat().st_mtime_ns}"
    encoding = cache.get(key)
    if encoding is None:
        encoding = ml_adapter.viewer_encoding(volume, units=study.units)
        cache.set(key, encoding, 24 * 3600)
    return encoding


def _spacing(metadata: dict) -> list[float] | None:
    spacing = metadata.get("pixel_spacing_mm")
    if not spacing or len(spacing) != 2:
        return None
    values = [float(v) for v in spacing]
    ok = all(math.isfinite(v) and v > 0 for v in values)
    return values if ok else None


def _windows(study: Study, metadata: dict) -> dict[str, list[float]]:
    windows: dict[str, list[float]] = {}
    if study.units == "HU":
        windows = {k: list(v) for k, v in ml_adapter.VIEWER_WINDOWS.items()}
    centre, width = metadata.get("window_center"), metadata.get("window_width")
    if centre is not None and width and math.isfinite(centre) and width > 0:
        windows[STUDY_WINDOW] = [float(centre), float(width)]
    return windows


def series_list(*, study: Study) -> list[dict]:
    """Every series of the study as the page lists it: the analysed one (index 0)
    first, then the others kept for viewing, each with its label, slice count and
    thickness, and whether the viewer can show it (or why not)."""
    metadata = study.dicom_metadata or {}
    listed = [
        {
            "index": 0,
            "label": study.analysed_series_label,
            "slice_count": study.slice_count,
            "thickness": _millimetres(metadata.get("slice_thickness_mm")),
            "analysed": True,
            "viewable": True,
            "note": "",
        }
    ]
    for series in study.other_series.all():
        listed.append(
            {
                "index": series.index,
                "label": series.label,
                "slice_count": series.slice_count,
                "thickness": _millimetres(series.slice_thickness_mm),
                "analysed": False,
                "viewable": series.status == SeriesStatus.READY,
                "note": _series_note(series),
            }
        )
    return listed


def _millimetres(value) -> str:
    """A thickness as a reader writes it: '5', '2.5', '0.625' (mm); '' unknown."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{number:g}" if math.isfinite(number) and number > 0 else ""


def _series_note(series: Series) -> str:
    if series.status == SeriesStatus.FAILED:
        return series.error_message
    if series.status == SeriesStatus.PENDING:
        return "being read for viewing (after the AI's analysis): reload in a moment"
    return "; ".join(series.warnings or [])


def viewable_series(*, study: Study, series: int) -> Series | None:
    """The other series `series` when the viewer can show it (None for the
    analysed series, 0); NoSuchSeries otherwise."""
    if series == 0:
        return None
    found = study.other_series.filter(index=series, status=SeriesStatus.READY).first()
    if found is None or not storage.volume_path(study.pk, series=series).exists():
        indices = [str(s["index"]) for s in series_list(study=study) if s["viewable"]]
        raise NoSuchSeries(
            f"This study has no viewable series {series}; its series are "
            f"{', '.join(indices)} (0 is the analysed series)."
        )
    return found


def _series_meta(
    study: Study, series: Series | None, *, positions: list | None = None
) -> dict:
    """What the viewer needs to draw one series: its own shape, encoding, spacing,
    orientation, default window and slice positions (``positions``: the analysed
    series' own, from its Slice rows; another series keeps them in its metadata)."""
    index = 0 if series is None else series.index
    path, volume = _volume(study, index)
    metadata = (study.dicom_metadata if series is None else series.dicom_metadata) or {}
    return {
        "index": index,
        "label": study.analysed_series_label if series is None else series.label,
        "analysed": series is None,
        "shape": list(volume.shape),
        "encoding": _encoding(study, path, volume),
        "spacing": _spacing(metadata),
        "thickness": metadata.get("slice_thickness_mm"),
        "thicknessWords": _millimetres(metadata.get("slice_thickness_mm")),
        "orientation": ml_adapter.edge_labels(metadata.get("image_orientation")),
        "window": list(ml_adapter.viewer_window(volume, units=study.units)),
        "positions": _positions(
            positions
            if series is None
            else (series.dicom_metadata or {}).get("positions_mm"),
            count=volume.shape[0],
        ),
        "dataUrl": reverse("diagnosis:slice-data", args=[study.pk])
        + f"?series={index}",
    }


def _positions(found: list | None, *, count: int) -> list | None:
    """Each slice's position (mm, along the superior-pointing normal), so that
    switching series keeps the level; None when any of the ``count`` is unknown."""
    found = found or []
    ok = len(found) == count and all(
        isinstance(p, int | float) and math.isfinite(p) for p in found
    )
    return [float(p) for p in found] if ok else None


def viewer_meta(
    *,
    study: Study,
    slices: list[Slice],
    result: AIResult | None,
    start: int,
    measurements: list[dict] | None = None,
) -> dict:
    """What the viewer script reads from the page (json_script): the volume's
    shape, units and int16 encoding, pixel spacing (mm, row then column), the
    orientation markers, window presets, the per-slice AI probability and overlay
    slices, and where to fetch slices and overlays."""
    metadata = study.dicom_metadata or {}
    analysed = _series_meta(study, None, positions=[s.position_mm for s in slices])
    others = study.other_series.filter(status=SeriesStatus.READY)
    shown = [analysed] + [
        _series_meta(study, s)
        for s in others
        if storage.volume_path(study.pk, series=s.index).exists()
    ]
    finite = [
        s.probability
        if s.probability is not None and math.isfinite(s.probability)
        else None
        for s in slices
    ]
    return {
        # The analysed series' geometry, as in series[0].
        **{k: analysed[k] for k in ("shape", "encoding", "spacing", "orientation")},
        "units": study.units,
        "windows": _windows(study, metadata),
        "window": analysed["window"],
        "start": start,
        "probabilities": finite,
        "threshold": result.model_version.threshold if result else None,
        "overlays": [s.index for s in slices if s.heatmap_name],
        "block": BLOCK,
        # The reader's own earlier measurements, to amend with their reading.
        "measurements": measurements or [],
        "dataUrl": reverse("diagnosis:slice-data", args=[study.pk]),
        "overlayUrl": reverse("diagnosis:heatmap-image", args=[study.pk, 0]),
        # Each series the viewer can show, the analysed one first (index 0): the
        # AI's probabilities, overlays and "next suspicious" are that one's only.
        "series": shown,
    }


def slice_data(
    *, study: Study, start: int, count: int, series: int = 0
) -> tuple[bytes, int]:
    """Slices ``start``.. (at most ``count``, at most BLOCK) of the series
    ``series`` (0: the analysed one) as int16, and how many it holds; Http404
    outside the study, NoSuchSeries for a series it cannot show."""
    viewable_series(study=study, series=series)
    path, volume = _volume(study, series)
    stop = min(start + max(1, min(count, BLOCK)), volume.shape[0])
    if not 0 <= start < stop:
        raise Http404("No such slice.")
    encoding = _encoding(study, path, volume)
    data = ml_adapter.viewer_slices(volume, start=start, stop=stop, encoding=encoding)
    return data, stop - start


def volume_version(*, study: Study, series: int = 0) -> str:
    """Changes when the stored volume is written again: the data's ETag."""
    path = storage.volume_path(study.pk, series=series)
    if not path.exists():
        return "none"
    return f"{study.pk}-{series}-{path.stat().st_mtime_ns}"
