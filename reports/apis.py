"""The same report downloads on the API, for hospital systems with a token. Scoping,
404 for studies the caller may not see, and audit as on the pages; a study without an
AI result yet answers 409."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import audit_record
from accounts.permissions import HasRole
from diagnosis.selectors import study_get_for_user

from . import fhir, services
from .views import DOWNLOAD, dicom_response, fhir_response, report_pdf_response

_CONFLICT = OpenApiResponse(description="The study has no AI result yet.")


def _conflict(error) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)


class StudyReportPdfApi(APIView):
    """The study's PDF report for its current AI result and review."""

    permission_classes = [HasRole]
    # What a 401 or 403 here was asked for, in its audit entry.
    audit_object_type = "diagnosis.study"

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 409: _CONFLICT}
    )
    def get(self, request, pk: int):
        study = study_get_for_user(user=request.user, pk=pk)
        try:
            report = services.report_get_or_render(study=study)
        except services.ReportUnavailable as error:
            return _conflict(error)
        audit_record(
            action=DOWNLOAD,
            request=request,
            obj=study,
            detail={"format": "pdf", "report": report.reference, "api": True},
        )
        return report_pdf_response(report)


class StudyReportFhirApi(APIView):
    """A FHIR R4(B) Bundle: DiagnosticReport, Observations for the AI finding and the
    radiologist's review, Patient, Device (the model) and ImagingStudy."""

    permission_classes = [HasRole]
    # What a 401 or 403 here was asked for, in its audit entry.
    audit_object_type = "diagnosis.study"

    @extend_schema(
        responses={(200, fhir.MEDIA_TYPE): OpenApiTypes.OBJECT, 409: _CONFLICT}
    )
    def get(self, request, pk: int):
        study = study_get_for_user(user=request.user, pk=pk)
        pdf_url = request.build_absolute_uri(reverse("api:study-report-pdf", args=[pk]))
        try:
            bundle = fhir.study_fhir_bundle(study=study, pdf_url=pdf_url)
        except services.ReportUnavailable as error:
            return _conflict(error)
        audit_record(
            action=DOWNLOAD,
            request=request,
            obj=study,
            detail={"format": "fhir", "bundle": bundle.id, "api": True},
        )
        return fhir_response(bundle, study_pk=study.pk)


class StudyReportDicomApi(APIView):
    """A zip of DICOM Part 10 files in the study's StudyInstanceUID: the report as
    Encapsulated PDF and the key slices with the model's map as Secondary Capture
    images."""

    permission_classes = [HasRole]
    # What a 401 or 403 here was asked for, in its audit entry.
    audit_object_type = "diagnosis.study"

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 409: _CONFLICT}
    )
    def get(self, request, pk: int):
        study = study_get_for_user(user=request.user, pk=pk)
        try:
            report, data = services.report_dicom_export(study=study)
        except services.ReportUnavailable as error:
            return _conflict(error)
        audit_record(
            action=DOWNLOAD,
            request=request,
            obj=study,
            detail={"format": "dicom", "report": report.reference, "api": True},
        )
        return dicom_response(report, data)
