"""DICOMweb under /dicomweb/ (included from stroke_portal/urls.py). STOW-RS is in
stow.py; QIDO-RS and WADO-RS (GET) are in dicomweb.py."""

from django.urls import path

from . import stow

app_name = "dicomweb"

urlpatterns = [
    path("studies", stow.StudyStoreApi.as_view(), name="stow"),
    path("studies/<str:study_uid>", stow.StudyStoreApi.as_view(), name="stow-study"),
]
