from django.urls import path

from . import views

app_name = "diagnosis"

urlpatterns = [
    path("", views.study_list, name="study-list"),
    path("pulse.json", views.study_list_pulse, name="study-list-pulse"),
    path("upload/", views.study_upload, name="study-upload"),
    path("<int:pk>/", views.study_detail, name="study-detail"),
    path("<int:pk>/status.json", views.study_status, name="study-status"),
    path("<int:pk>/slices/<int:index>.png", views.slice_image, name="slice-image"),
    path("<int:pk>/slices/data", views.slice_data, name="slice-data"),
    path(
        "<int:pk>/slices/<int:index>/heatmap.png",
        views.heatmap_image,
        name="heatmap-image",
    ),
    path("<int:pk>/review/", views.study_review, name="study-review"),
    path("<int:pk>/reprocess/", views.study_reprocess, name="study-reprocess"),
]
