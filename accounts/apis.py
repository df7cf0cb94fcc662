from django.contrib.auth.decorators import login_not_required
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .permissions import HasRole


class MeApi(APIView):
    """The signed-in user and their role: lets an API client check its token."""

    permission_classes = [HasRole]

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        full_name = serializers.CharField(source="get_full_name")
        email = serializers.EmailField()
        role = serializers.CharField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        return Response(self.OutputSerializer(request.user).data)


@method_decorator(login_not_required, name="dispatch")
class TokenCreateApi(ObtainAuthToken):
    """POST username and password, get the API token (throttled like the login page).

    A locked-out account/address answers 429 with the lockout and its duration, as
    the login page does, even to the right password (not a misleading 400)."""

    def post(self, request, *args, **kwargs):
        from axes.handlers.proxy import AxesProxyHandler

        credentials = {"username": str(request.data.get("username", ""))}
        if AxesProxyHandler.is_locked(request._request, credentials=credentials):
            return _locked_out()
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            if AxesProxyHandler.is_locked(request._request, credentials=credentials):
                return _locked_out()  # this attempt was the one that locked it
            raise


def _locked_out() -> Response:
    from django.conf import settings

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return Response(
        {
            "detail": "Too many failed sign-in attempts: this account is locked "
            f"for {minutes} minutes from this address.",
            "locked_for_minutes": minutes,
        },
        status=429,
    )
