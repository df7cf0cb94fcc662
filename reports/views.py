"""Report downloads for the study page: the PDF, the FHIR Bundle and the DICOM zip.
Each is for the users who may see the study (others get 404) and each download is
audited with the report it handed out."""

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.audit import audit_record
from accounts.permissions import any_role_required
from diagnosis.selectors import study_get_for_user

from . import fhir, selectors, services

DOWNLOAD = "report.download"


def _unavailable(request: HttpRequest, study, error) -> HttpResponse:
    messages.info(request, str(error))
    return redirect("diagnosis:study-detail", pk=study.pk)


def _no_store(response: HttpResponse) -> HttpResponse:
    # Patient data, and the next download may differ: no caches on the way.
    response["Cache-Control"] = "private, no-store"
    return response


def report_pdf_response(report, *, attachment: bool = True) -> FileResponse:
    return _no_store(
        FileResponse(
            open(selectors.report_path(report), "rb"),
            as_attachment=attachment,
            filename=f"stroke-report-{report.reference}.pdf",
            content_type="application/pdf",
        )
    )


def fhir_response(bundle, *, study_pk: int) -> HttpResponse:
    response = HttpResponse(
        bundle.model_dump_json(indent=2), content_type=fhir.MEDIA_TYPE
    )
    response["Content-Disposition"] = (
        f'attachment; filename="stroke-report-{study_pk}.fhir.json"'
    )
    return _no_store(response)


def dicom_response(report, data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = (
        f'attachment; filename="stroke-report-{report.reference}-dicom.zip"'
    )
    return _no_store(response)


@any_role_required
@require_GET
def study_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    study = study_get_for_user(user=request.user, pk=pk)
    try:
        report = services.report_get_or_render(study=study)
    except services.ReportUnavailable as error:
        return _unavailable(request, study, error)
    audit_record(
        action=DOWNLOAD,
        request=request,
        obj=study,
        detail={"format": "pdf", "report": report.reference},
    )
    return report_pdf_response(report, attachment=request.GET.get("view") != "1")


@any_role_required
@require_GET
def study_fhir(request: HttpRequest, pk: int) -> HttpResponse:
    study = study_get_for_user(user=request.user, pk=pk)
    pdf_url = request.build_absolute_uri(reverse("reports:study-pdf", args=[pk]))
    try:
        bundle = fhir.study_fhir_bundle(study=study, pdf_url=pdf_url)
    except services.ReportUnavailable as error:
        return _unavailable(request, study, error)
    audit_record(
        action=DOWNLOAD,
        request=request,
        obj=study,
        detail={"format": "fhir", "bundle": bundle.id},
    )
    return fhir_response(bundle, study_pk=study.pk)


@any_role_required
@require_GET
def study_dicom(request: HttpRequest, pk: int) -> HttpResponse:
    study = study_get_for_user(user=request.user, pk=pk)
    try:
        report, data = services.report_dicom_export(study=study)
    except services.ReportUnavailable as error:
        return _unavailable(request, study, error)
    audit_record(
        action=DOWNLOAD,
        request=request,
        obj=study,
        detail={"format": "dicom", "report": report.reference},
    )
    return dicom_response(report, data)
