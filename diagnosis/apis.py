"""REST API for studies: the same validation, scoping and audit as the pages."""

import math

from django.core.exceptions import TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import AuditContext, audit_record
from accounts.models import Role
from accounts.permissions import HasRole

from . import findings, selectors, services
from .forms import StudyFilterForm
from .models import Label, Sex, StrokeType


def finite_or_none(value):
    """A stored NaN or infinity (JSON has neither) is answered as absent, never as a
    500 for every reader of the list."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class FiniteFloatField(serializers.FloatField):
    def to_representation(self, value):
        return finite_or_none(value)


class ResultSerializer(serializers.Serializer):
    label = serializers.CharField()
    finding = serializers.SerializerMethodField()
    stroke_type = serializers.CharField()
    probability = FiniteFloatField(allow_null=True)
    confidence = FiniteFloatField(allow_null=True)
    threshold = FiniteFloatField(allow_null=True)
    type_probabilities = serializers.DictField(child=FiniteFloatField(allow_null=True))
    suspicious_slices = serializers.ListField(child=serializers.IntegerField())
    volume_ml = FiniteFloatField(allow_null=True)
    model_version = serializers.CharField(source="model_version.__str__")
    is_demo_model = serializers.BooleanField(source="model_version.is_demo")
    created_at = serializers.DateTimeField()

    def get_finding(self, result) -> str:
        """The finding as the study page words it, e.g. "No hemorrhage suspected"."""
        return findings.finding_words(
            card=result.model_version.card,
            label=result.label,
            stroke_type=result.stroke_type,
            volume_ml=result.volume_ml,
        ).headline


class ReviewOutputSerializer(serializers.Serializer):
    final_label = serializers.CharField()
    stroke_type = serializers.CharField()
    impression = serializers.CharField()
    agrees_with_ai = serializers.BooleanField()
    reviewer = serializers.CharField(source="reviewer.username")
    created_at = serializers.DateTimeField()


class StudyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    error_message = serializers.CharField()
    outside_scope_reason = serializers.CharField()
    progress = serializers.SerializerMethodField()
    patient_id = serializers.CharField()
    patient_age = serializers.IntegerField(allow_null=True)
    patient_sex = serializers.CharField()
    modality = serializers.CharField()
    slice_count = serializers.IntegerField()
    priority = FiniteFloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    queued_at = serializers.DateTimeField()
    ready_at = serializers.DateTimeField()
    seconds_to_result = FiniteFloatField(allow_null=True)
    rejected_files = serializers.ListField(child=serializers.DictField())
    result = ResultSerializer(source="current_result", allow_null=True)
    review = ReviewOutputSerializer(source="current_review", allow_null=True)
    slice_probabilities = serializers.SerializerMethodField()

    def get_progress(self, study) -> dict:
        return {"done": study.progress_done, "total": study.progress_total}

    def get_slice_probabilities(self, study) -> list[float | None]:
        stored = study.slices.order_by("index").values_list("probability", flat=True)
        return [finite_or_none(p) for p in stored]


class StudyListOutputSerializer(serializers.Serializer):
    """One worklist row, from a dict of `selectors.WORKLIST_FIELDS`."""

    id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    patient_id = serializers.CharField()
    patient_age = serializers.IntegerField(allow_null=True)
    patient_sex = serializers.CharField()
    modality = serializers.CharField()
    slice_count = serializers.IntegerField()
    ai_label = serializers.CharField()
    ai_stroke_type = serializers.CharField()
    ai_confidence = FiniteFloatField(allow_null=True)
    ai_probability = FiniteFloatField(allow_null=True)
    ai_finding = serializers.CharField()
    ai_volume_ml = FiniteFloatField(allow_null=True)
    ai_demo_model = serializers.BooleanField()
    outside_scope_reason = serializers.CharField()
    reviewed = serializers.BooleanField()
    # The radiologist's current reading, which decides once there is one.
    reading_label = serializers.CharField(allow_null=True)
    reading_stroke_type = serializers.CharField(allow_null=True)
    read_at = serializers.DateTimeField(allow_null=True)
    priority = FiniteFloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, study) -> str:
        return reverse("api:study-detail", args=[study["pk"]])


class StudyListPagination(PageNumberPagination):
    """Page-number pages whose total is shared for a few seconds per scope and
    filters (`selectors.study_list_count_for_user`) rather than counted per page."""

    def __init__(self, *, count):
        self._count = count

    def django_paginator_class(self, object_list, per_page):
        return selectors.CountedPaginator(object_list, per_page, count=self._count)


class StudyListCreateApi(APIView):
    """GET: the studies you may see, in worklist order, filtered and paginated.
    POST (multipart): upload one study (`files`, plus optional clinical fields)."""

    permission_classes = [HasRole]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema_serializer(component_name="StudyCreateInput")
    class InputSerializer(serializers.Serializer):
        # An empty file is set aside by the upload service with its name, as the
        # web form does, rather than refused here by its index in the list.
        files = serializers.ListField(
            child=serializers.FileField(allow_empty_file=True), allow_empty=False
        )
        patient_id = serializers.CharField(max_length=64, required=False)
        patient_age = serializers.IntegerField(
            min_value=0, max_value=130, required=False
        )
        patient_sex = serializers.ChoiceField(choices=Sex.choices, required=False)
        symptom_onset = serializers.DateTimeField(required=False)
        clinical_notes = serializers.CharField(max_length=4000, required=False)

    @extend_schema(responses=StudyListOutputSerializer(many=True))
    def get(self, request):
        form = StudyFilterForm(request.query_params or None)
        filters = form.filters()
        if filters is None:
            raise ValidationError(form.errors.get_json_data())
        user = request.user
        studies = selectors.study_rows_for_user(user=user, **filters)
        paginator = StudyListPagination(
            count=lambda: selectors.study_list_count_for_user(user=user, **filters)
        )
        page = paginator.paginate_queryset(studies, request, view=self)
        audit_record(
            action="study.list",
            request=request,
            detail={"api": True, "count": len(page)},
        )
        return paginator.get_paginated_response(
            StudyListOutputSerializer(page, many=True).data
        )

    @extend_schema(request=InputSerializer, responses={201: StudyOutputSerializer})
    def post(self, request):
        try:
            data = {**request.data.dict(), "files": request.FILES.getlist("files")}
        except TooManyFilesSent:
            return Response(
                {"detail": services.too_many_files_message(), "rejected": []},
                status=status.HTTP_400_BAD_REQUEST,
            )
        serializer = self.InputSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        clinical = {k: v for k, v in serializer.validated_data.items() if k != "files"}
        try:
            outcome = services.study_create(
                user=request.user,
                files=serializer.validated_data["files"],
                clinical=clinical,
                audit=AuditContext.of(request),
            )
        except services.UploadError as error:
            return Response(
                {"detail": error.message, "rejected": error.rejected},
                status=status.HTTP_400_BAD_REQUEST,
            )
        body = StudyOutputSerializer(outcome.study).data
        body["created"] = outcome.created
        return Response(
            body,
            status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
        )


class StudyDetailApi(APIView):
    """The study's status, AI result (per-slice probabilities included) and review."""

    permission_classes = [HasRole]
    # What a 401 or 403 here was asked for, in its audit entry.
    audit_object_type = "diagnosis.study"

    @extend_schema(responses=StudyOutputSerializer)
    def get(self, request, pk: int):
        study = selectors.study_get_for_user(user=request.user, pk=pk)
        audit_record(
            action="study.view", request=request, obj=study, detail={"api": True}
        )
        return Response(StudyOutputSerializer(study).data)


class StudyReviewApi(APIView):
    """Record a radiologist's reading of a ready study."""

    permission_classes = [HasRole.of(Role.RADIOLOGIST, Role.ADMIN)]
    # What a 401 or 403 here was asked for, in its audit entry.
    audit_object_type = "diagnosis.study"

    @extend_schema_serializer(component_name="ReviewInput")
    class InputSerializer(serializers.Serializer):
        final_label = serializers.ChoiceField(choices=Label.choices)
        stroke_type = serializers.ChoiceField(
            choices=StrokeType.choices, required=False, allow_blank=True, default=""
        )
        impression = serializers.CharField(
            max_length=8000, required=False, allow_blank=True, default=""
        )

    @extend_schema(request=InputSerializer, responses={201: ReviewOutputSerializer})
    def post(self, request, pk: int):
        study = selectors.study_get_for_user(user=request.user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            review = services.review_submit(
                study=study,
                reviewer=request.user,
                audit=AuditContext.of(request),
                **serializer.validated_data,
            )
        except DjangoValidationError as error:
            raise ValidationError({"detail": error.messages}) from error
        return Response(
            ReviewOutputSerializer(review).data, status=status.HTTP_201_CREATED
        )
