from django.contrib import admin
from django.urls import include, path

from accounts import apis as account_apis
from accounts import views as account_views

from . import views

admin.site.site_header = "Stroke portal administration"
admin.site.site_title = "Stroke portal"

api_v1 = [
    path("me/", account_apis.MeApi.as_view(), name="me"),
    path("auth/token/", account_apis.TokenCreateApi.as_view(), name="token-create"),
]

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("api/v1/", include((api_v1, "api"))),
    path("django-admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
]

handler403 = "stroke_portal.views.permission_denied"
handler404 = "stroke_portal.views.page_not_found"
handler500 = "stroke_portal.views.server_error"
