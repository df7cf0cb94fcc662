from django.urls import path

from . import views

app_name = "feedback"

urlpatterns = [
    path("cases/", views.case_list, name="case-list"),
    path("cases/flag/", views.case_flag, name="case-flag"),
    path("cases/<int:pk>/confirm/", views.case_confirm, name="case-confirm"),
    path("cases/<int:pk>/reject/", views.case_reject, name="case-reject"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/status.json", views.job_status, name="job-status"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("models/", views.model_list, name="model-list"),
    path("models/<int:pk>/", views.model_detail, name="model-detail"),
    path("models/<int:pk>/promote/", views.model_promote, name="model-promote"),
    path("models/<int:pk>/rollback/", views.model_rollback, name="model-rollback"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/figures.json", views.dashboard_figures, name="dashboard-figures"),
]
