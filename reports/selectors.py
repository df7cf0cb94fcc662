"""Reads for reports: everything a report shows about a study, gathered once so the
PDF, FHIR and DICOM builders never query the database themselves."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from diagnosis import ml_adapter, storage
from diagnosis.models import AIResult, Review, Study, StudyStatus

from . import images
from .models import Report

logger = logging.getLogger(__name__)

BRAIN_WINDOW = (40.0, 80.0)


class ReportUnavailable(Exception):
    """The study has no AI result to report on (yet)."""


@dataclass
class ReportContent:
    study: Study
    result: AIResult
    review: Review | None
    probabilities: list[float | None]
    key_slices: list[images.KeySlice] = field(default_factory=list)


def report_state(*, study: Study) -> tuple[AIResult, Review | None]:
    """The study's current AI result and review: what a report must show. Raises
    ReportUnavailable when the study is not ready or has no result."""
    result = study.current_result if study.status == StudyStatus.READY else None
    if result is None:
        raise ReportUnavailable(
            "The report is available once the AI analysis of the study is ready."
        )
    return result, study.current_review


def report_cached(
    *, study: Study, result: AIResult, review: Review | None
) -> Report | None:
    """The rendered report for this state, if its file is still on disk."""
    report = Report.objects.filter(study=study, ai_result=result, review=review).first()
    if report is None or not report_path(report).exists():
        return None
    return report


def report_dir(study_id: int) -> Path:
    return storage.study_dir(study_id) / "reports"


def report_path(report: Report) -> Path:
    return report_dir(report.study_id) / report.file_name


def report_content(
    *, study: Study, result: AIResult, review: Review | None, images_too: bool = True
) -> ReportContent:
    """What a report shows; `images_too=False` skips the key slices' pictures (for
    exports that carry none)."""
    slices = list(study.slices.order_by("index"))
    probabilities = [s.probability for s in slices]
    heatmaps = {s.index: s.heatmap_name for s in slices if s.heatmap_name}
    chosen = images.key_slice_indices(
        suspicious=list(result.suspicious_slices or []),
        with_heatmap=list(heatmaps),
        probabilities=probabilities,
    )
    return ReportContent(
        study=study,
        result=result,
        review=review,
        probabilities=probabilities,
        key_slices=_key_slices(study, chosen, heatmaps, probabilities)
        if images_too
        else [],
    )


def _key_slices(study, chosen, heatmaps, probabilities) -> list[images.KeySlice]:
    path = storage.volume_path(study.pk)
    if not path.exists():
        logger.warning(
            "study %s has no volume on disk: report without slices", study.pk
        )
        return []
    volume = np.load(path, mmap_mode="r")
    out = []
    for index in chosen:
        grey = ml_adapter.slice_png(
            volume, index=index, units=study.units, window=BRAIN_WINDOW
        )
        heat_path = storage.heatmap_path(study.pk, heatmaps.get(index, "-"))
        heat = (
            heat_path.read_bytes() if index in heatmaps and heat_path.exists() else None
        )
        ct, overlay = images.key_slice_images(grey, heat)
        out.append(images.KeySlice(index, probabilities[index], ct, overlay))
    return out


def institution_logo() -> Path | None:
    """The logo file from INSTITUTION_LOGO, or None when unset or missing."""
    value = settings.INSTITUTION_LOGO
    if not value:
        return None
    path = Path(value)
    path = path if path.is_absolute() else Path(settings.BASE_DIR) / path
    if not path.is_file():
        logger.warning("INSTITUTION_LOGO %s is not a file; reports go without", path)
        return None
    return path
