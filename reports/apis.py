"""The same report downloads on the API, for hospital systems with a token. Scoping,
404 for studies the caller may not see, and audit as on the pages (reports.downloads);
a study without an AI result yet answers 409."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasRole

from . import fhir
from .downloads import study_download

_CONFLICT = OpenApiResponse(description="The study has no AI result yet.")


def _conflict(study, error) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)


class _ReportDownloadApi(APIView):
    permission_classes = [HasRole]
    # What a 401 or 403 here was asked for, in its audit entry.
    audit_object_type = "diagnosis.study"
    kind = ""

    def get(self, request, pk: int):
        return study_download(
            request, pk=pk, kind=self.kind, api=True, unavailable=_conflict
        )


class StudyReportPdfApi(_ReportDownloadApi):
    """The study's PDF report for its current AI result and review."""

    kind = "pdf"

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 409: _CONFLICT}
    )
    def get(self, request, pk: int):
        return super().get(request, pk)


class StudyReportFhirApi(_ReportDownloadApi):
    """A FHIR R4(B) Bundle: DiagnosticReport, Observations for the AI finding and the
    radiologist's review, Patient, Device (the model) and ImagingStudy."""

    kind = "fhir"

    @extend_schema(
        responses={(200, fhir.MEDIA_TYPE): OpenApiTypes.OBJECT, 409: _CONFLICT}
    )
    def get(self, request, pk: int):
        return super().get(request, pk)


class StudyReportDicomApi(_ReportDownloadApi):
    """A zip of DICOM Part 10 files in the study's StudyInstanceUID: the report as
    Encapsulated PDF and the key slices with the model's map as Secondary Capture
    images."""

    kind = "dicom"

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 409: _CONFLICT}
    )
    def get(self, request, pk: int):
        return super().get(request, pk)
