"""Admin pages of the DICOM node registry, under /dicom/ (stroke_portal/urls.py)."""

from django.urls import path

from . import nodes

app_name = "dicomnode"

urlpatterns = [
    path("nodes/", nodes.node_list, name="node-list"),
    path("nodes/new/", nodes.node_create, name="node-create"),
    path("nodes/<int:pk>/", nodes.node_edit, name="node-edit"),
    path("nodes/<int:pk>/deactivate/", nodes.node_deactivate, name="node-deactivate"),
    path("sites/new/", nodes.site_create, name="site-create"),
]
