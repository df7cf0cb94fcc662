from django.contrib import admin
from django.urls import include, path

from accounts import apis as account_apis
from accounts import views as account_views
from accounts.permissions import any_role_required
from diagnosis import apis as study_apis
from feedback import apis as feedback_apis
from reports import apis as report_apis

from . import views

admin.site.site_header = "Stroke portal administration"
admin.site.site_title = "Stroke portal"

api_v1 = [
    path("me/", account_apis.MeApi.as_view(), name="me"),
    path("auth/token/", account_apis.TokenCreateApi.as_view(), name="token-create"),
    path("studies/", study_apis.StudyListCreateApi.as_view(), name="study-list"),
    path("studies/<int:pk>/", study_apis.StudyDetailApi.as_view(), name="study-detail"),
    path(
        "studies/<int:pk>/review/",
        study_apis.StudyReviewApi.as_view(),
        name="study-review",
    ),
    path(
        "feedback-cases/",
        feedback_apis.FeedbackCaseListApi.as_view(),
        name="feedback-case-list",
    ),
    path(
        "retraining-jobs/",
        feedback_apis.RetrainingJobListCreateApi.as_view(),
        name="retraining-job-list",
    ),
    path(
        "retraining-jobs/<int:pk>/",
        feedback_apis.RetrainingJobDetailApi.as_view(),
        name="retraining-job-detail",
    ),
    path(
        "model-versions/",
        feedback_apis.ModelVersionListApi.as_view(),
        name="model-version-list",
    ),
    path(
        "model-versions/<int:pk>/promote/",
        feedback_apis.ModelVersionPromoteApi.as_view(),
        name="model-version-promote",
    ),
    path(
        "studies/<int:pk>/report/pdf/",
        report_apis.StudyReportPdfApi.as_view(),
        name="study-report-pdf",
    ),
    path(
        "studies/<int:pk>/report/fhir/",
        report_apis.StudyReportFhirApi.as_view(),
        name="study-report-fhir",
    ),
    path(
        "studies/<int:pk>/report/dicom/",
        report_apis.StudyReportDicomApi.as_view(),
        name="study-report-dicom",
    ),
]

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("studies/", include("diagnosis.urls")),
    path("feedback/", include("feedback.urls")),
    path("reports/", include("reports.urls")),
    # The study page's "Send again" and "Acknowledge alert" (results back, alerts).
    path("dicomnode/", include("dicomnode.study_urls")),
    path("api/v1/", include((api_v1, "api"))),
    # DICOMweb: STOW-RS, QIDO-RS and WADO-RS, for senders and viewers such as OHIF.
    path("dicomweb/", include("dicomnode.urls")),
    path("dicom/", include("dicomnode.urls_nodes")),
    path("django-admin/", admin.site.urls),
    # The API's description, for signed-in users and API tokens alike (Swagger UI
    # from local files).
    path("api/schema/", views.SchemaApi.as_view(), name="schema"),
    path(
        "api/docs/",
        any_role_required(views.ApiDocsView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]

handler400 = "stroke_portal.views.bad_request"
handler403 = "stroke_portal.views.permission_denied"
handler404 = "stroke_portal.views.page_not_found"
handler500 = "stroke_portal.views.server_error"
