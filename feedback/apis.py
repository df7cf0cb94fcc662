"""REST API of the feedback loop: the same services and rules as the pages."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import AuditContext
from accounts.models import Role
from accounts.permissions import HasRole

from . import selectors, services
from .models import ModelTask, TrainingDataset


def _drf_error(error: DjangoValidationError) -> ValidationError:
    if hasattr(error, "error_dict"):
        return ValidationError(error.message_dict)
    return ValidationError({"detail": error.messages})


class FeedbackCaseListApi(APIView):
    permission_classes = [HasRole.of(Role.RADIOLOGIST, Role.ADMIN)]

    @extend_schema_serializer(component_name="FeedbackCase")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="pk")
        study = serializers.IntegerField(source="study_id")
        kind = serializers.CharField()
        status = serializers.CharField()
        ai_label = serializers.CharField()
        final_label = serializers.CharField()
        stroke_type = serializers.CharField()
        model_version = serializers.CharField(allow_null=True)
        reported_by = serializers.CharField(source="reported_by.username")
        decided_by = serializers.CharField(allow_null=True)
        rejection_reason = serializers.CharField()
        # Why a confirmed case never trains (its images are in a locked test split).
        kept_out_reason = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="feedback_cases_list", responses=OutputSerializer(many=True)
    )
    def get(self, request):
        cases = selectors.case_list_for_user(
            user=request.user, status=request.query_params.get("status", "")
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(cases, request, view=self)
        return paginator.get_paginated_response(
            self.OutputSerializer(page, many=True).data
        )


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    dataset = serializers.IntegerField(source="dataset_id")
    architecture = serializers.CharField()
    task = serializers.CharField()
    epochs = serializers.IntegerField()
    epoch = serializers.IntegerField()
    seed = serializers.IntegerField()
    include_feedback = serializers.BooleanField()
    history = serializers.ListField(child=serializers.DictField())
    error_message = serializers.CharField()
    candidate = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_candidate(self, job) -> int | None:
        candidate = job.candidate
        return candidate.pk if candidate else None


class RetrainingJobListCreateApi(APIView):
    permission_classes = [HasRole.of(Role.ADMIN)]

    @extend_schema_serializer(component_name="RetrainingJobInput")
    class InputSerializer(serializers.Serializer):
        dataset = serializers.PrimaryKeyRelatedField(
            queryset=TrainingDataset.objects.all()
        )
        architecture = serializers.CharField(default="custom_cnn")
        task = serializers.ChoiceField(
            choices=ModelTask.choices, default=ModelTask.BINARY
        )
        epochs = serializers.IntegerField(default=10, min_value=1, max_value=500)
        seed = serializers.IntegerField(default=0, min_value=0)
        image_size = serializers.ChoiceField(choices=[64, 128, 224], default=128)
        include_feedback = serializers.BooleanField(default=True)

    @extend_schema(
        operation_id="retraining_jobs_list",
        responses=JobOutputSerializer(many=True),
    )
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.job_list(), request, view=self)
        return paginator.get_paginated_response(
            JobOutputSerializer(page, many=True).data
        )

    @extend_schema(request=InputSerializer, responses={201: JobOutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            job = services.retraining_job_start(
                by=request.user, audit=AuditContext.of(request), **data.validated_data
            )
        except DjangoValidationError as error:
            raise _drf_error(error) from error
        return Response(JobOutputSerializer(job).data, status=status.HTTP_201_CREATED)


class RetrainingJobDetailApi(APIView):
    permission_classes = [HasRole.of(Role.ADMIN)]

    @extend_schema(
        operation_id="retraining_jobs_retrieve", responses=JobOutputSerializer
    )
    def get(self, request, pk: int):
        return Response(JobOutputSerializer(selectors.job_get(pk=pk)).data)


class ModelVersionListApi(APIView):
    permission_classes = [HasRole.of(Role.ADMIN)]

    @extend_schema_serializer(component_name="ModelVersion")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="pk")
        name = serializers.CharField()
        version = serializers.CharField()
        architecture = serializers.CharField()
        task = serializers.CharField()
        modality = serializers.CharField()
        status = serializers.CharField()
        source = serializers.CharField()
        sha256 = serializers.CharField()
        metrics = serializers.DictField()
        is_demo = serializers.BooleanField()
        activated_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        versions = selectors.model_version_list()
        return Response(self.OutputSerializer(versions, many=True).data)


class PromoteOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()


class ModelVersionPromoteApi(APIView):
    permission_classes = [HasRole.of(Role.ADMIN)]

    @extend_schema_serializer(component_name="PromoteInput")
    class InputSerializer(serializers.Serializer):
        override_reason = serializers.CharField(
            required=False, allow_blank=True, default=""
        )

    @extend_schema(request=InputSerializer, responses={200: PromoteOutputSerializer})
    def post(self, request, pk: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = selectors.model_version_get(pk=pk)
        try:
            services.model_version_promote(
                version=version,
                by=request.user,
                audit=AuditContext.of(request),
                **data.validated_data,
            )
        except DjangoValidationError as error:
            raise _drf_error(error) from error
        return Response({"id": version.pk, "status": "active"})
