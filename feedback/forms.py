from django import forms

from . import ml_adapter
from .models import CaseStatus, DatasetStatus, ModelTask, TrainingDataset


class CaseFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "All"), *CaseStatus.choices], required=False
    )


class CaseRejectForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="Why this case must not teach the model.",
    )


class CaseFlagForm(forms.Form):
    study = forms.IntegerField(label="Study number", min_value=1)
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=2000,
        help_text="What makes the study hard (optional).",
    )


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=120)
    root = forms.CharField(
        label="Folder on the server",
        max_length=500,
        required=False,
        help_text="Class folders (Normal/, Stroke/ ...) below it.",
    )
    archive = forms.FileField(
        label="or a zip file",
        required=False,
        help_text="The same class folders, zipped (at its top or inside one folder).",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    group_regex = forms.CharField(
        label="Scan pattern",
        max_length=200,
        required=False,
        help_text="Regex with (?P<group>...) naming a file's scan; empty: 'N (k)' "
        "file names, or the DICOM patient and study.",
    )
    test_fraction = forms.FloatField(
        initial=0.2,
        min_value=0.05,
        max_value=0.5,
        help_text="Share of scans locked away as the test split, chosen once.",
    )
    seed = forms.IntegerField(initial=0, min_value=0)

    def clean(self):
        data = super().clean()
        if bool(data.get("root")) == bool(data.get("archive")):
            raise forms.ValidationError(
                "Give either a folder on the server or a zip file (one of the two)."
            )
        return data


class JobForm(forms.Form):
    dataset = forms.ModelChoiceField(
        label="Data set",
        queryset=TrainingDataset.objects.filter(status=DatasetStatus.READY),
        empty_label=None,
    )
    architecture = forms.ChoiceField(initial="custom_cnn")
    task = forms.ChoiceField(
        choices=ModelTask.choices,
        initial=ModelTask.BINARY,
        help_text="Stroke type needs a data set labelled normal, ischemic and "
        "hemorrhagic.",
    )
    include_feedback = forms.BooleanField(
        initial=True, required=False, label="Include confirmed feedback cases"
    )
    epochs = forms.IntegerField(initial=10, min_value=1, max_value=500)
    seed = forms.IntegerField(initial=0, min_value=0)
    image_size = forms.TypedChoiceField(
        coerce=int,
        choices=[(64, "64 px"), (128, "128 px"), (224, "224 px")],
        initial=128,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["architecture"].choices = [
            (name, f"{name} — {description}")
            for name, description in ml_adapter.architectures().items()
        ]


class PromoteForm(forms.Form):
    override_reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=2000,
        label="Override reason",
        help_text="Needed only when the gate refuses; it is kept in the audit trail.",
    )


class ModelUploadForm(forms.Form):
    archive = forms.FileField(
        help_text="A zip of a model folder: model.json and its weight files."
    )
