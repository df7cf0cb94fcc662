"""Fixtures for diagnosis tests: synthetic studies on disk, a registered model, and
the ml adapter stubbed at its one boundary (`ml_adapter.analyse`)."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from diagnosis import ml_adapter
from feedback.models import ModelStatus, ModelVersion
from ml.synthetic import make_phantom, write_dicom_series


@pytest.fixture(autouse=True)
def files_root(settings, tmp_path):
    settings.FILES_ROOT = tmp_path / "files"
    return settings.FILES_ROOT


@pytest.fixture(scope="session")
def series_dir(tmp_path_factory) -> Path:
    """An 8-slice 64-px synthetic head CT written as a DICOM series."""
    folder = tmp_path_factory.mktemp("series")
    write_dicom_series(
        make_phantom(label="hemorrhagic", size=64, slices=8, seed=3),
        folder,
        patient_id="MRN-0042",
    )
    return folder


def uploads_of(folder: Path) -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile(p.name, p.read_bytes()) for p in sorted(folder.iterdir())
    ]


def zip_of(members: dict[str, bytes], name: str = "upload.zip") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return SimpleUploadedFile(name, buffer.getvalue())


@pytest.fixture
def active_model(db):
    return ModelVersion.objects.create(
        name="unit-test model",
        version="1",
        architecture="custom_cnn",
        task="binary",
        classes=["normal", "stroke"],
        modality="CT",
        path="/nonexistent",
        sha256="0" * 64,
        status=ModelStatus.ACTIVE,
        threshold=0.4,
    )


def fake_analysis(
    label="stroke", probability=0.91, slices=8, stroke_type="hemorrhagic"
):
    probs = [0.05] * slices
    probs[5] = probability
    return ml_adapter.Analysis(
        label=label,
        probability=probability,
        confidence=max(probability, 1 - probability),
        threshold=0.4,
        slice_probabilities=probs,
        suspicious_slices=[5, 4, 3],
        stroke_type=stroke_type if label == "stroke" else "",
        heatmaps={5: np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)},
        timings={"predict": 0.01},
    )


@pytest.fixture
def stub_analysis(monkeypatch):
    """Replace the model call; tests set `.next` to the Analysis to return or the
    exception to raise, and read `.calls`."""

    class Stub:
        next = fake_analysis()
        calls = 0

        def __call__(self, *, load_result, progress=None, **kwargs):
            self.calls += 1
            if isinstance(self.next, BaseException):
                raise self.next
            total = len(load_result.slices)
            if progress:
                progress(total, total)
            return self.next

    stub = Stub()
    monkeypatch.setattr(ml_adapter, "analyse", stub)
    return stub


#: The synthetic head of the browser tests with the shipped model: a 512-px
#: intraparenchymal bleed, as the model reads real scans.
BLEED_PHANTOM = {"label": "hemorrhagic", "lesion": "intraparenchymal", "size": 512}


@pytest.fixture
def shipped_model(transactional_db, settings, tmp_path):
    """The shipped model (models/ich-seg-ctich), activated as a fresh `make run`
    activates it."""
    from io import StringIO

    from django.core.management import call_command

    settings.MODELS_DIR = tmp_path / "models"
    ml_adapter._loaded.clear()
    call_command("model_ensure", stdout=StringIO())
    yield
    ml_adapter._loaded.clear()


@pytest.fixture
def bleed_series(tmp_path):
    """(phantom, files): the bleed phantom written as a 512-px DICOM series."""
    phantom = make_phantom(**BLEED_PHANTOM, seed=1)
    folder = tmp_path / "series"
    write_dicom_series(phantom, folder, patient_id="SEG-E2E-1", uid_seed="seg-e2e")
    return phantom, sorted(folder.iterdir())
