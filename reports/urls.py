from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("studies/<int:pk>/report.pdf", views.study_pdf, name="study-pdf"),
    path("studies/<int:pk>/report.fhir.json", views.study_fhir, name="study-fhir"),
    path("studies/<int:pk>/report-dicom.zip", views.study_dicom, name="study-dicom"),
]
