import io

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.urls import reverse

from . import measurements
from .models import Label, Sex, StrokeType, StudyStatus


class NotKeptFile(UploadedFile):
    """A file of a study upload past its limits: its name and size, not its bytes."""

    def __init__(self, name: str, size: int):
        super().__init__(io.BytesIO(), name, "application/octet-stream", size)


def _study_upload_paths() -> set[str]:
    return {reverse("diagnosis:study-upload"), reverse("api:study-list")}


class UploadLimitHandler(FileUploadHandler):
    """First upload handler. On the study upload URLs, once the request passes
    UPLOAD_MAX_FILES files or UPLOAD_MAX_BYTES, every later file is counted but not
    kept (neither in memory nor on disk) and stands as a :class:`NotKeptFile`: the
    upload service then refuses the upload with a message naming the limit, where
    Django would answer a bare 400 (its CSRF check reads the form before any view),
    and an oversized upload fills no disk before it is refused."""

    def __init__(self, request=None):
        super().__init__(request)
        self.active = request is not None and request.path_info in (
            _study_upload_paths()
        )
        self.files = self.total = self.current = 0
        self.over = False

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if not self.active:
            return
        self.files += 1
        self.current = 0
        self.over = self.over or self.files > settings.UPLOAD_MAX_FILES
        if self.over:
            raise StopFutureHandlers  # no memory or temporary file for it

    def receive_data_chunk(self, raw_data, start):
        if not self.active:
            return raw_data
        self.current += len(raw_data)
        self.total += len(raw_data)
        self.over = self.over or self.total > settings.UPLOAD_MAX_BYTES
        return None if self.over else raw_data

    def file_complete(self, file_size):
        if self.active and self.over:
            return NotKeptFile(self.file_name, self.current)
        return None


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def __init__(self, *args, **kwargs):
        # Empty files are reported by the upload service, by name, with the others.
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        if self.required and not files:
            raise forms.ValidationError(
                self.error_messages["required"], code="required"
            )
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="Images",
        help_text="A DICOM series (files, a folder or a zip), PNG/JPG slices, or a "
        "NIfTI volume. One study per upload.",
    )
    patient_id = forms.CharField(
        label="Patient ID / MRN",
        max_length=64,
        required=False,
        help_text="Taken from the DICOM files when empty.",
    )
    patient_age = forms.IntegerField(min_value=0, max_value=130, required=False)
    patient_sex = forms.ChoiceField(choices=Sex.choices, required=False)
    symptom_onset = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="When the symptoms started, if known.",
    )
    clinical_notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=4000
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["files"].widget.attrs.update({"multiple": True})

    def clinical(self) -> dict:
        data = self.cleaned_data
        return {
            k: data.get(k)
            for k in (
                "patient_id",
                "patient_age",
                "patient_sex",
                "symptom_onset",
                "clinical_notes",
            )
            if data.get(k) not in (None, "")
        }


class ReviewForm(forms.Form):
    final_label = forms.ChoiceField(
        label="Final finding", choices=Label.choices, widget=forms.RadioSelect
    )
    stroke_type = forms.ChoiceField(choices=StrokeType.choices, required=False)
    impression = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=8000
    )
    # Filled by the viewer (static/js/viewer.js) with the reader's measurements.
    measurements = forms.JSONField(
        required=False, widget=forms.HiddenInput, initial=list
    )

    def clean_measurements(self):
        try:
            return measurements.cleaned(self.cleaned_data.get("measurements") or [])
        except ValueError as error:
            raise forms.ValidationError(f"Measurements not saved: {error}") from None

    def clean(self):
        data = super().clean()
        if data.get("final_label") == Label.NORMAL:
            data["stroke_type"] = ""
        return data


class StudyFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *StudyStatus.choices], required=False
    )
    ai_label = forms.ChoiceField(
        label="AI finding",
        choices=[("", "Any AI finding"), *Label.choices],
        required=False,
    )
    stroke_type = forms.ChoiceField(
        choices=[("", "Any type"), *[c for c in StrokeType.choices if c[0]]],
        required=False,
    )
    modality = forms.ChoiceField(
        choices=[("", "Any modality"), ("CT", "CT"), ("MR", "MR")], required=False
    )
    reviewed = forms.ChoiceField(
        choices=[("", "Reviewed or not"), ("no", "Not reviewed"), ("yes", "Reviewed")],
        required=False,
    )
    date_from = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    patient_id = forms.CharField(label="Patient ID", required=False, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Plain Bootstrap classes: this form is drawn on every worklist refresh, and
        # crispy's per-field templates cost more than the query behind the page.
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select" if is_select else "form-control"

    def filters(self) -> dict | None:
        """Non-empty filters; None when the form is invalid (show its errors rather
        than an unfiltered list)."""
        if not self.is_bound:
            return {}
        if not self.is_valid():
            return None
        return {k: v for k, v in self.cleaned_data.items() if v}
