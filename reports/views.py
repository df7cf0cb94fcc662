"""Report downloads for the study page: the PDF, the FHIR Bundle and the DICOM zip.
Each is for the users who may see the study (others get 404) and each download is
audited with the report it handed out (reports.downloads)."""

from functools import partial

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from accounts.permissions import any_role_required

from .downloads import study_download


def _unavailable(request: HttpRequest, study, error) -> HttpResponse:
    messages.info(request, str(error))
    return redirect("diagnosis:study-detail", pk=study.pk)


def _download(request: HttpRequest, pk: int, kind: str, **options) -> HttpResponse:
    return study_download(
        request, pk=pk, kind=kind, unavailable=partial(_unavailable, request), **options
    )


@any_role_required
@require_GET
def study_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    # ?view=1 opens it in the browser's viewer instead of saving it.
    return _download(request, pk, "pdf", attachment=request.GET.get("view") != "1")


@any_role_required
@require_GET
def study_fhir(request: HttpRequest, pk: int) -> HttpResponse:
    return _download(request, pk, "fhir")


@any_role_required
@require_GET
def study_dicom(request: HttpRequest, pk: int) -> HttpResponse:
    return _download(request, pk, "dicom")
