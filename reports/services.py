"""Writes for reports: rendering a study's PDF for its current state and keeping it,
and the exports built from it."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from diagnosis.models import AIResult, Review, Study

from . import dicom, pdf, selectors, sr
from .models import Report
from .queue import report_enqueue
from .selectors import ReportUnavailable

__all__ = [
    "ReportUnavailable",
    "report_dicom_export",
    "report_dicom_objects",
    "report_enqueue",
    "report_get_or_render",
    "report_render",
    "report_render_current",
]

logger = logging.getLogger(__name__)


def report_render_current(*, study_id: int) -> Report | None:
    """The task's work: the report for the study's current state, rendered unless it
    exists. None when the study is gone or has nothing to report yet."""
    study = Study.objects.select_related("uploaded_by").filter(pk=study_id).first()
    if study is None:
        return None
    try:
        return report_get_or_render(study=study)
    except ReportUnavailable:
        return None


def report_get_or_render(*, study: Study) -> Report:
    """The report for the study's current AI result and review: the kept one when it
    exists, else rendered now, so a download always shows the latest state even when
    the worker has not caught up. Raises ReportUnavailable before a result exists."""
    result, review = selectors.report_state(study=study)
    cached = selectors.report_cached(study=study, result=result, review=review)
    return cached or report_render(study=study, result=result, review=review)


def report_render(
    *, study: Study, result: AIResult | None, review: Review | None
) -> Report:
    started = time.perf_counter()
    report = Report(uid=uuid.uuid4(), study=study, ai_result=result, review=review)
    content = selectors.report_content(study=study, result=result, review=review)
    html = pdf.report_html(
        content,
        reference=report.reference,
        generated_at=timezone.now(),
        logo=selectors.institution_logo(),
    )
    data = pdf.report_pdf(html)
    report.file_name = f"{report.uid.hex}.pdf"
    report.sha256 = hashlib.sha256(data).hexdigest()
    report.size = len(data)
    _write_atomically(selectors.report_path(report), data)
    report.render_seconds = time.perf_counter() - started
    return _report_keep(report)


def _write_atomically(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, path)  # a reader never sees half a PDF


def _report_keep(report: Report) -> Report:
    """Save the rendered report, unless another process rendered the same state
    meanwhile: then keep theirs and drop ours, so there is one report per state."""
    same_state = Report.objects.filter(
        study=report.study, ai_result=report.ai_result, review=report.review
    )
    try:
        with transaction.atomic():
            existing = same_state.select_for_update().first()
            theirs = existing is not None and selectors.report_path(existing).exists()
            if existing is not None and not theirs:
                existing.delete()  # its file is gone: this rendering replaces it
            if not theirs:
                report.save()
    except IntegrityError:  # inserted by another process between our read and write
        theirs = True
    if theirs:
        selectors.report_path(report).unlink(missing_ok=True)
        return same_state.get()
    logger.info(
        "report %s for study %s rendered in %.2f s",
        report.reference,
        report.study_id,
        report.render_seconds,
    )
    return report


def report_dicom_export(*, study: Study) -> tuple[Report, bytes]:
    """The current report as a zip of DICOM files for the study (see reports.dicom):
    the same instances, with the same UIDs, as are sent to a PACS."""
    report, objects = report_dicom_objects(study=study)
    return report, dicom.dicom_zip(objects)


def report_dicom_objects(*, study: Study) -> tuple[Report, dict[str, list]]:
    """The current report's DICOM instances by kind, for sending to a PACS:
    "pdf" (the Encapsulated PDF), "sc" (the key images) and "sr" (the structured
    report; none when the model declined the study). The same report gives the
    same instances (and UIDs) as its DICOM download."""
    report = report_get_or_render(study=study)
    content = selectors.report_content(
        study=study, result=report.ai_result, review=report.review
    )
    header = dicom.reference_header(study)
    document = dicom.encapsulated_pdf(
        content,
        selectors.report_path(report).read_bytes(),
        report_uid=report.uid,
        created_at=report.created_at,
        header=header,
    )
    key_images = dicom.key_images(content, report_uid=report.uid, header=header)
    objects = {"pdf": [document], "sc": key_images, "sr": []}
    if content.result is not None:
        evidence = ([header] if header is not None else []) + key_images + [document]
        objects["sr"] = [
            sr.structured_report(
                content,
                report_uid=report.uid,
                created_at=timezone.localtime(report.created_at),
                evidence=evidence,
            )
        ]
    return report, objects
