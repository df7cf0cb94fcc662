"""Every report file a user fetches, on a page or the API, goes through
`study_download`: the study scoped to the user (404 for another's, audited as a
refused read), the file built for the study's current state, one audit row naming
the file handed out, and a response that no cache keeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import reverse

from accounts.audit import audit_record
from diagnosis.selectors import study_get_for_user

from . import fhir, selectors, services

DOWNLOAD = "report.download"
KINDS = ("pdf", "fhir", "dicom")


@dataclass(frozen=True)
class ReportFile:
    """A file ready to hand out and what its audit row says of it (its format and
    the report or bundle it is)."""

    response: HttpResponse
    detail: dict


def study_download(
    request: HttpRequest,
    *,
    pk: int,
    kind: str,
    unavailable: Callable[[object, Exception], HttpResponse],
    api: bool = False,
    attachment: bool = True,
) -> HttpResponse:
    """The study's report as `kind` ("pdf", "fhir" or "dicom"), audited; before the
    study has anything to report, what `unavailable(study, error)` answers."""
    if kind not in KINDS:
        raise ValueError(f"Unknown report format {kind!r}; expected one of {KINDS}.")
    study = study_get_for_user(user=request.user, pk=pk)
    try:
        file = _build(kind, study, request=request, api=api, attachment=attachment)
    except services.ReportUnavailable as error:
        return unavailable(study, error)
    audit_record(
        action=DOWNLOAD,
        request=request,
        obj=study,
        detail={**file.detail, **({"api": True} if api else {})},
    )
    # Patient data, and the next download may differ: no caches on the way.
    file.response["Cache-Control"] = "private, no-store"
    return file.response


def _build(kind: str, study, *, request, api: bool, attachment: bool) -> ReportFile:
    if kind == "pdf":
        report = services.report_get_or_render(study=study)
        response = FileResponse(
            open(selectors.report_path(report), "rb"),  # noqa: SIM115 (closed by Django)
            as_attachment=attachment,
            filename=f"stroke-report-{report.reference}.pdf",
            content_type="application/pdf",
        )
        return ReportFile(response, {"format": "pdf", "report": report.reference})
    if kind == "fhir":
        pdf_view = "api:study-report-pdf" if api else "reports:study-pdf"
        pdf_url = request.build_absolute_uri(reverse(pdf_view, args=[study.pk]))
        bundle = fhir.study_fhir_bundle(study=study, pdf_url=pdf_url)
        response = _attachment(
            bundle.model_dump_json(indent=2),
            content_type=fhir.MEDIA_TYPE,
            filename=f"stroke-report-{study.pk}.fhir.json",
        )
        return ReportFile(response, {"format": "fhir", "bundle": bundle.id})
    report, data = services.report_dicom_export(study=study)
    response = _attachment(
        data,
        content_type="application/zip",
        filename=f"stroke-report-{report.reference}-dicom.zip",
    )
    return ReportFile(response, {"format": "dicom", "report": report.reference})


def _attachment(content, *, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
