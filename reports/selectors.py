"""Reads for reports: everything a report shows about a study, gathered once so the
PDF, FHIR and DICOM builders never query the database themselves."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from diagnosis import ml_adapter, storage
from diagnosis.findings import (
    FindingWords,
    card_extra,
    finding_words,
    outside_scope_words,
)
from diagnosis.models import AIResult, Review, Study, StudyStatus
from diagnosis.selectors import AIExplanation, ai_explanation

from . import images
from .models import Report

logger = logging.getLogger(__name__)

BRAIN_WINDOW = ml_adapter.VIEWER_WINDOWS["brain"]


class ReportUnavailable(Exception):
    """The study has no AI result to report on (yet)."""


@dataclass
class ReportContent:
    """What every report format says about one state of a study.

    `result` is None, and `outside_scope` says why in the words every page uses,
    when the model declined a study that is not what it was made for: then there is
    no finding and no probability to report. Otherwise `words` is the AI finding as
    the model's card names it.
    """

    study: Study
    result: AIResult | None
    review: Review | None
    probabilities: list[float | None]
    words: FindingWords | None
    explanation: AIExplanation
    outside_scope: str = ""
    key_slices: list[images.KeySlice] = field(default_factory=list)

    @property
    def is_demo(self) -> bool:
        if self.result is None:
            return self.study.ai_demo_model
        return self.result.model_version.is_demo

    @property
    def volume_ml(self) -> float | None:
        return self.result.volume_ml if self.result is not None else None

    @property
    def finding_text(self) -> str:
        """The finding in one line: "No hemorrhage suspected — this does not exclude
        an ischemic stroke", or the outside-scope words when the model declined."""
        if self.words is None:
            return self.outside_scope
        caveat = f" \u2014 {self.words.caveat}" if self.words.caveat else ""
        return self.words.headline + caveat

    @property
    def positive_title(self) -> str:
        """What the model's probability is the probability of, in its card's words
        ("Suspected intracranial hemorrhage")."""
        return finding_words(card=self._card, label="stroke").title

    @property
    def outlines(self) -> bool:
        """The model draws lesion outlines (a segmenting model), not a heatmap."""
        return card_extra(self._card).get("explanation") == "segmentation"

    @property
    def _card(self) -> dict:
        return self.result.model_version.card if self.result is not None else {}


def report_state(*, study: Study) -> tuple[AIResult | None, Review | None]:
    """The study's current AI result and review: what a report must show. The
    result is None for a study the model declined as outside what it was made for
    (it is ready to read without AI). Raises ReportUnavailable when the study is not
    ready or has no result."""
    if study.status == StudyStatus.READY and study.outside_scope_reason:
        return None, study.current_review
    result = study.current_result if study.status == StudyStatus.READY else None
    if result is None:
        raise ReportUnavailable(
            "The report is available once the AI analysis of the study is ready."
        )
    return result, study.current_review


def report_cached(
    *, study: Study, result: AIResult | None, review: Review | None
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
    *,
    study: Study,
    result: AIResult | None,
    review: Review | None,
    images_too: bool = True,
) -> ReportContent:
    """What a report shows; `images_too=False` skips the key slices' pictures (for
    exports that carry none)."""
    slices = list(study.slices.order_by("index"))
    probabilities = [s.probability for s in slices]
    content = ReportContent(
        study=study,
        result=result,
        review=review,
        probabilities=probabilities,
        words=None,
        explanation=ai_explanation(result=result),
    )
    if result is None:
        # The model read nothing, so it picked no key slices either.
        content.outside_scope = outside_scope_words(study.outside_scope_reason)
        return content
    content.words = finding_words(
        card=result.model_version.card,
        label=result.label,
        stroke_type=result.stroke_type,
        volume_ml=result.volume_ml,
    )
    if images_too:
        heatmaps = {s.index: s.heatmap_name for s in slices if s.heatmap_name}
        chosen = images.key_slice_indices(
            suspicious=list(result.suspicious_slices or []),
            with_heatmap=list(heatmaps),
            probabilities=probabilities,
        )
        content.key_slices = _key_slices(
            study, chosen, heatmaps, probabilities, outlines=content.outlines
        )
    return content


def _key_slices(
    study, chosen, heatmaps, probabilities, *, outlines: bool
) -> list[images.KeySlice]:
    path = storage.volume_path(study.pk)
    if not path.exists():
        logger.warning(
            "study %s has no volume on disk: report without slices", study.pk
        )
        return []
    volume = np.load(path, mmap_mode="r")
    out = []
    for index in chosen:
        grey = ml_adapter.slice_pixels(
            volume, index=index, units=study.units, window=BRAIN_WINDOW
        )
        heat_path = storage.heatmap_path(study.pk, heatmaps.get(index, "-"))
        heat = (
            heat_path.read_bytes() if index in heatmaps and heat_path.exists() else None
        )
        ct, overlay = images.key_slice_images(grey, heat, outline=outlines)
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
