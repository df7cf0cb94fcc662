import math

from django import template
from django.utils import timezone
from django.utils.html import format_html

from diagnosis import findings
from diagnosis.models import Label, StrokeType

register = template.Library()


def finite(value) -> float | None:
    """A number to show, or None (shown as "—"): rows written before non-finite
    results were refused may hold NaN or infinity, which must never read "nan%"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


_STATUS = {
    "queued": "secondary",
    "processing": "info",
    "ready": "success",
    "failed": "danger",
}


@register.simple_tag
def status_badge(status: str, label: str = "") -> str:
    colour = _STATUS.get(status, "secondary")
    return format_html(
        '<span class="badge text-bg-{}">{}</span>', colour, label or status
    )


# A calibrated probability this close to 0.5 is a coin flip: the badge says so
# instead of looking as sure as a clear finding.
BORDERLINE_MARGIN = 0.1


@register.simple_tag
def ai_badge(
    label: str | None,
    stroke_type: str | None,
    probability: float | None,
    finding: str = "",
    volume_ml: float | None = None,
    demo: bool = False,
    outside_scope: str = "",
):
    """The AI finding in a list or on the study page, worded by diagnosis.findings,
    with the model's calibrated probability of that finding (the same number the
    study page and the reports show); `demo` adds the demo-model marker,
    `outside_scope` (the model's reason) replaces the finding for a study the model
    declined."""
    if outside_scope:
        badge = format_html(
            '<span class="badge text-bg-secondary" data-ai-label="outside-scope">'
            "{}</span>"
            '<div class="small text-body-secondary">{}</div>',
            findings.OUTSIDE_SCOPE.label,
            outside_scope,
        )
    elif not label:
        badge = format_html('<span class="text-body-secondary">—</span>')
    else:
        badge = _finding_badge(
            label, stroke_type, finite(probability), finding, finite(volume_ml)
        )
    return format_html("{}{}", badge, demo_badge() if demo else "")


def _finding_badge(label, stroke_type, probability, finding, volume_ml) -> str:
    words = findings.finding_words(
        card=None,
        label=label,
        stroke_type=stroke_type or "",
        volume_ml=volume_ml,
        finding=finding or "",
    )
    colour = "danger" if words.positive else "success"
    pct, title = "", ""
    if probability is not None:
        pct = f" · {probability * 100:.0f}%"
        name = findings.FINDING_NAMES[words.finding]
        title = f"AI probability of {name}: {probability * 100:.1f}%"
        if abs(probability - 0.5) < BORDERLINE_MARGIN:
            colour, pct = "warning", f"{pct} · borderline"
    return format_html(
        '<span class="badge text-bg-{}" data-ai-label="{}" title="{}">{}{}</span>',
        colour,
        label,
        title,
        words.headline,
        pct,
    )


@register.filter
def finding_headline(result) -> str:
    """An AIResult's finding as its model card words it."""
    return findings.finding_words(
        card=result.model_version.card,
        label=result.label,
        stroke_type=result.stroke_type,
        volume_ml=finite(result.volume_ml),
    ).headline


def reading_badge(label: str | None, stroke_type: str | None) -> str:
    """The radiologist's reading in a list: it leads once there is one, and the
    AI's call beside it becomes secondary."""
    if not label:
        return ""
    words = Label(label).label
    if label == Label.STROKE and stroke_type:
        words += f" ({StrokeType(stroke_type).label.lower()})"
    colour = "danger" if label == Label.STROKE else "success"
    return format_html(
        '<span class="badge text-bg-{} border border-dark" data-reading="{}"'
        ' title="The radiologist\'s reading">Read: {}</span>',
        colour,
        label,
        words,
    )


@register.simple_tag
def demo_badge() -> str:
    return format_html(
        ' <span class="badge text-bg-warning" data-testid="demo-model" title="{}">'
        "demo model</span>",
        findings.DEMO.explanation,
    )


_METADATA_LABELS = (
    ("manufacturer", "Scanner", "{}"),
    ("series_description", "Series", "{}"),
    ("slice_thickness_mm", "Slice thickness", "{:.2f} mm"),
    ("slice_spacing_mm", "Slice spacing", "{:.2f} mm"),
    ("pixel_spacing_mm", "Pixel spacing", "{0[0]:.3f} \u00d7 {0[1]:.3f} mm"),
    ("gantry_tilt_deg", "Gantry tilt", "{:.1f}°"),
    ("window_center", "Window centre", "{:g}"),
    ("window_width", "Window width", "{:g}"),
    ("study_time", "Study time", "{}"),
    ("stored_size", "Stored slice size", "{0[1]} \u00d7 {0[0]} px"),
    ("reduction", "Read reduced", "{:g}\u00d7 per side, for the model and viewer"),
)


@register.filter
def metadata_rows(study) -> list[tuple[str, str]]:
    """The scanner's metadata as (label, value) rows a radiologist reads."""
    rows = []
    meta = study.dicom_metadata or {}
    for key, label, fmt in _METADATA_LABELS:
        value = meta.get(key)
        if value in (None, "", []) or (isinstance(value, float) and not finite(value)):
            continue
        if key == "study_time":  # DICOM TM: drop the fraction of a second
            value = str(value).split(".")[0]
        try:
            rows.append((label, fmt.format(value)))
        except (TypeError, ValueError, IndexError):
            rows.append((label, str(value)))
    if meta.get("uneven_spacing"):
        rows.append(("Spacing", "uneven between slices"))
    return rows


@register.filter
def percent(value: float | None) -> str:
    value = finite(value)
    return "—" if value is None else f"{value * 100:.0f}%"


@register.filter
def percent_fine(value: float | None) -> str:
    """One decimal: a probability and its threshold side by side must not both
    read "50%" when one is below the other."""
    value = finite(value)
    return "—" if value is None else f"{value * 100:.1f}%"


@register.filter
def finite_number(value) -> float | None:
    """The value when it is a finite number, else None (see :func:`finite`)."""
    return finite(value)


@register.filter
def finite_or_zero(value) -> float:
    """For a bar's length: a missing or non-finite probability draws none."""
    return finite(value) or 0


@register.filter
def waiting(created_at, until=None) -> str:
    """How long a study has waited, or, once read (`until`), how long it waited to
    be read ("read after 12 min")."""
    if until is not None:
        return f"read after {_duration(until - created_at)}"
    return _duration(timezone.now() - created_at)


# --- The clocks a stroke team works against ------------------------------------------
_SCAN_WORDS = {
    "acquired": ("scanned", "Scanned"),
    "last_instance": ("received", "Last slice received"),
    "received": ("received", "Received"),
    "uploaded": ("uploaded", "Uploaded"),
}


def _exact(moment) -> str:
    """The moment in settings.TIME_ZONE, with its zone: what a title shows."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def _ago(moment, now) -> str:
    elapsed = now - moment
    if elapsed.total_seconds() < 60:
        return "just now" if elapsed.total_seconds() > -60 else "in the future"
    return f"{_duration(elapsed)} ago"


@register.simple_tag
def scan_clock(acquired_at, last_instance_at, created_at, arrival="upload", now=None):
    """Time since the scan: its acquisition time (DICOM), else when its last slice
    arrived, else when the study came in, worded by which it is ("scanned 12 min
    ago", "received 12 min ago"); the exact time, in the portal's time zone, in the
    title."""
    if acquired_at is not None:
        kind, moment = "acquired", acquired_at
    elif last_instance_at is not None:
        kind, moment = "last_instance", last_instance_at
    else:
        kind = "uploaded" if arrival in ("", "upload") else "received"
        moment = created_at
    if moment is None:
        return ""
    short, long = _SCAN_WORDS[kind]
    return format_html(
        '<span class="text-nowrap" data-clock="scan" data-clock-kind="{}" '
        'data-since="{}" data-word="{}" title="{} {}">{} {}</span>',
        kind,
        moment.isoformat(),
        short,
        long,
        _exact(moment),
        short,
        _ago(moment, now or timezone.now()),
    )


@register.simple_tag
def onset_clock(symptom_onset, now=None):
    """Time since symptom onset where it was entered ("onset 2 h 05 min ago")."""
    if symptom_onset is None:
        return ""
    return format_html(
        '<span class="text-nowrap" data-clock="onset" data-since="{}" '
        'data-word="onset" title="Symptom onset {}">onset {}</span>',
        symptom_onset.isoformat(),
        _exact(symptom_onset),
        _ago(symptom_onset, now or timezone.now()),
    )


def _duration(elapsed) -> str:
    minutes = max(0, int(elapsed.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes // 1440} days"
