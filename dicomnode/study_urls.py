"""URLs of the study page's dicomnode actions (included at "dicomnode/")."""

from django.urls import path

from . import study_actions

app_name = "dicomnode-results"

urlpatterns = [
    path(
        "studies/<int:pk>/deliveries/resend/",
        study_actions.delivery_resend,
        name="delivery-resend",
    ),
    path(
        "studies/<int:pk>/alerts/acknowledge/",
        study_actions.alert_acknowledge,
        name="alert-acknowledge",
    ),
]
