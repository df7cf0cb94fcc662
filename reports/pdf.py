"""The PDF report: an HTML template rendered by WeasyPrint. Pictures travel inside the
HTML as data URIs, so rendering never fetches anything."""

from __future__ import annotations

import base64
import mimetypes
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from diagnosis.findings import DEMO, OUTSIDE_SCOPE, finding_name

from . import images
from .selectors import ReportContent

#: The report's demo marker: the card words' label, and what it means for a reader.
DEMO_MARKER = f"{DEMO.label.upper()} \u2014 not for clinical use"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _logo_uri(path: Path | None) -> str:
    if path is None:
        return ""
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return data_uri(path.read_bytes(), mime)


def _person(user) -> str:
    return (user.get_full_name() or user.username) if user else ""


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value * 100:.1f} %"


def _figures(content: ReportContent) -> list[dict]:
    total = len(content.probabilities)
    return [
        {
            "number": item.index + 1,
            "total": total,
            "probability": _percent(item.probability),
            "ct": data_uri(images.jpeg_bytes(item.ct), "image/jpeg"),
            "overlay": data_uri(images.jpeg_bytes(item.overlay), "image/jpeg")
            if item.overlay is not None
            else "",
        }
        for item in content.key_slices
    ]


def _result_numbers(result) -> dict:
    """The AI result's numbers, as the report prints them."""
    return {
        "probability": _percent(result.probability),
        # In the probability's own unit, so 49.6 % below a 49.7 % threshold reads so.
        "threshold": _percent(result.threshold),
        "type_probabilities": [
            (name, _percent(p))
            for name, p in sorted(
                (result.type_probabilities or {}).items(), key=lambda kv: -kv[1]
            )
        ],
    }


def _plot_uri(content: ReportContent) -> str:
    plot = images.probability_plot_svg(
        content.probabilities,
        threshold=content.result.threshold,
        highlight=[k.index for k in content.key_slices],
    )
    return data_uri(plot.encode(), "image/svg+xml")


def report_html(
    content: ReportContent,
    *,
    reference: str,
    generated_at: datetime,
    logo: Path | None = None,
) -> str:
    result, review = content.result, content.review
    context = {
        "institution_name": settings.INSTITUTION_NAME,
        "portal_name": settings.PORTAL_NAME,
        "logo": _logo_uri(logo),
        "study": content.study,
        "uploaded_by": _person(content.study.uploaded_by),
        "result": result,
        "words": content.words,
        "outside_scope": content.outside_scope,
        "outside_scope_explanation": OUTSIDE_SCOPE.explanation,
        "positive_title": content.positive_title,
        "finding_name": finding_name(content.words),
        "model": result.model_version if result else None,
        "demo_marker": DEMO_MARKER if content.is_demo else "",
        "demo_explanation": DEMO.explanation,
        "explanation": content.explanation,
        "review": review,
        "reviewer": _person(review.reviewer) if review else "",
        "review_on_older_result": bool(
            review and review.ai_result_id != (result.pk if result else None)
        ),
        "figures": _figures(content),
        "plot": "" if result is None else _plot_uri(content),
        **(_result_numbers(result) if result else {}),
        "reference": reference,
        "generated_at": timezone.localtime(generated_at),
    }
    return render_to_string("reports/study_report.html", context)


def report_pdf(html: str) -> bytes:
    from weasyprint import HTML  # loads Pango; only processes that render pay for it

    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
