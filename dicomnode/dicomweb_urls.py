"""DICOMweb read side (QIDO-RS, WADO-RS) under /dicomweb/ (see dicomnode.dicomweb).
UIDs are path segments: digits and dots, never a slash."""

from django.urls import path

from . import dicomweb as views

app_name = "dicomweb"

STUDY = "studies/<str:study>"
SERIES = f"{STUDY}/series/<str:series>"
INSTANCE = f"{SERIES}/instances/<str:instance>"

urlpatterns = [
    path("studies", views.StudySearchApi.as_view(), name="studies"),
    path(STUDY, views.RetrieveApi.as_view(), name="study"),
    path(f"{STUDY}/metadata", views.MetadataApi.as_view(), name="study-metadata"),
    path(f"{STUDY}/series", views.SeriesSearchApi.as_view(), name="series-search"),
    path(
        f"{STUDY}/instances",
        views.InstanceSearchApi.as_view(),
        name="study-instances",
    ),
    path(SERIES, views.RetrieveApi.as_view(), name="series"),
    path(f"{SERIES}/metadata", views.MetadataApi.as_view(), name="series-metadata"),
    path(
        f"{SERIES}/instances",
        views.InstanceSearchApi.as_view(),
        name="series-instances",
    ),
    path(INSTANCE, views.RetrieveApi.as_view(), name="instance"),
    path(f"{INSTANCE}/metadata", views.MetadataApi.as_view(), name="instance-metadata"),
    path(f"{INSTANCE}/frames/<str:frames>", views.FramesApi.as_view(), name="frames"),
]
