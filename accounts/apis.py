from django.contrib.auth.decorators import login_not_required
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
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
    """POST username and password, get the API token (throttled like the login page)."""
