"""A reader's measurements from the viewer, checked at the boundary and put in words.

The viewer (static/js/viewer.js) sends them as JSON with the review; only the
numbers are kept (its words are rewritten here, so a page or the PDF never shows
text that came from the browser). Each is on one slice (0-based) of one series
(0: the analysed series; see diagnosis.models.Series.index), with its points in
the slice's pixels.
"""

from __future__ import annotations

import math

KINDS = ("length", "ellipse", "probe")
MAX_MEASUREMENTS = 100
_NUMBERS = ("mm", "area_mm2", "mean", "sd", "value")
_LIMIT = 1e7


def _number(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not math.isfinite(value) or abs(value) > _LIMIT:
        raise ValueError(f"{name} is out of range")
    return round(float(value), 2)


def _points(points) -> list[list[float]]:
    if not isinstance(points, list) or not 1 <= len(points) <= 2:
        raise ValueError("each measurement needs one or two points")
    out = []
    for point in points:
        if not isinstance(point, list) or len(point) != 2:
            raise ValueError("a point is a pair of numbers")
        out.append([_number(point[0], "a point"), _number(point[1], "a point")])
    return out


def _one(item) -> dict:
    if not isinstance(item, dict):
        raise ValueError("each measurement is an object")
    kind = item.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {str(kind)[:20]!r}")
    where = item.get("slice")
    if isinstance(where, bool) or not isinstance(where, int) or where < 0:
        raise ValueError("each measurement names its slice")
    series = item.get("series", 0)
    if isinstance(series, bool) or not isinstance(series, int) or series < 0:
        raise ValueError("each measurement names its series by number")
    kept = {
        "kind": kind,
        "series": series,
        "slice": where,
        "points": _points(item.get("points")),
    }
    kept.update({name: _number(item.get(name), name) for name in _NUMBERS})
    return kept


def cleaned(items) -> list[dict]:
    """The measurements as kept: kind, slice, points and numbers only. Raises
    ValueError naming what was wrong."""
    if not isinstance(items, list):
        raise ValueError("expected a list")
    if len(items) > MAX_MEASUREMENTS:
        raise ValueError(f"at most {MAX_MEASUREMENTS} measurements")
    return [_one(item) for item in items]


def series_labels(study) -> dict[int, str]:
    """Each series' label by index when the study has several (a measurement then
    says which it was made on); {} when it has one."""
    others = list(study.other_series.all())
    if not others:
        return {}
    return {0: study.analysed_series_label} | {s.index: s.label for s in others}


def words(m: dict, *, units: str, series: dict[int, str] | None = None) -> str:
    """One measurement as a reader writes it: "Slice 12: length 23.4 mm", or, in a
    study of several series, 'Series 3 "BONE", slice 12: length 23.4 mm'."""
    unit = " HU" if units == "HU" else ""
    index = m.get("series", 0)
    where = f"Slice {m['slice'] + 1}"
    if series:
        name = series.get(index, f"number {index} (no longer in the study)")
        analysed = " (analysed by the AI)" if index == 0 else ""
        where = f"Series {name}{analysed}, slice {m['slice'] + 1}"
    if m["kind"] == "length":
        size = f"{m['mm']:.1f} mm" if m.get("mm") is not None else "(no pixel spacing)"
        return f"{where}: length {size}"
    if m["kind"] == "probe":
        value = "—" if m.get("value") is None else f"{m['value']:.0f}"
        return f"{where}: value {value}{unit}"
    area = f"{m['area_mm2']:.1f} mm²" if m.get("area_mm2") is not None else "area —"
    mean = "—" if m.get("mean") is None else f"{m['mean']:.1f}"
    sd = f" ± {m['sd']:.1f}" if m.get("sd") is not None else ""
    return f"{where}: ellipse {area}, mean {mean}{sd}{unit}"
