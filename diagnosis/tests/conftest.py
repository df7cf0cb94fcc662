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
    exception to raise, and read `.calls` (and `.load_result`, what it was given)."""

    class Stub:
        next = fake_analysis()
        calls = 0
        load_result = None

        def __call__(self, *, load_result, progress=None, **kwargs):
            self.calls += 1
            self.load_result = load_result
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


# --- A study of two series, with known values (issue 17's series picker) ----------
#: The analysed series (most slices): 20 slices 2.5 mm apart of 32 x 32 pixels of
#: 0.5 mm; and another series of the same study: 10 slices 5 mm apart of 24 x 40
#: pixels of 0.8 mm, kept for viewing only, axial too but its rows run from the
#: patient's front to back (a quarter turn: other orientation markers).
TWO_SERIES = {
    3: {"slices": 20, "step": 2.5, "rows": 32, "cols": 32, "spacing": 0.5},
    2: {"slices": 10, "step": 5.0, "rows": 24, "cols": 40, "spacing": 0.8},
}
ORIENTATIONS = {3: [1, 0, 0, 0, 1, 0], 2: [0, -1, 0, 1, 0, 0]}
DESCRIPTIONS = {3: "THIN 2.5MM", 2: "BRAIN 5MM"}


def series_hu(number: int) -> np.ndarray:
    """The volume (D, H, W) in HU that series `number` holds, foot to head: series
    3 reads 10 per slice plus 100 on its right half; series 2 reads -500 + 20 per
    slice plus its row number."""
    spec = TWO_SERIES[number]
    depth, rows, cols = spec["slices"], spec["rows"], spec["cols"]
    k = np.arange(depth, dtype=np.float32)[:, None, None]
    if number == 3:
        right = (np.arange(cols) >= cols // 2)[None, None, :] * 100.0
        return np.broadcast_to(10.0 * k + right, (depth, rows, cols)).astype("f4")
    y = np.arange(rows, dtype=np.float32)[None, :, None]
    return np.broadcast_to(-500.0 + 20.0 * k + y, (depth, rows, cols)).astype("f4")


def write_two_series(folder: Path) -> Path:
    """Both series as DICOM files of one study, built with pydicom; instance
    numbers run head to foot, so only the positions give the order."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study_uid = generate_uid()
    for number, spec in TWO_SERIES.items():
        series_uid, volume = generate_uid(), series_hu(number)
        for k in range(spec["slices"]):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = (
                CTImageStorage,
                meta.MediaStorageSOPInstanceUID,
            )
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.Modality, ds.PatientID = "CT", "MRN-SERIES"
            ds.SeriesNumber, ds.SeriesDescription = number, DESCRIPTIONS[number]
            ds.InstanceNumber = spec["slices"] - k
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.ImagePositionPatient = [-8.0, -8.0, k * spec["step"]]
            ds.ImageOrientationPatient = ORIENTATIONS[number]
            ds.PixelSpacing = [spec["spacing"], spec["spacing"]]
            ds.SliceThickness = spec["step"]
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.Rows, ds.Columns = spec["rows"], spec["cols"]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
            ds.PixelRepresentation = 0
            ds.PixelData = (volume[k] + 1024).astype("<u2").tobytes()
            ds.save_as(folder / f"S{number}-IM{k:04d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="session")
def two_series_dir(tmp_path_factory) -> Path:
    return write_two_series(tmp_path_factory.mktemp("two-series"))


def two_series_analysis() -> ml_adapter.Analysis:
    """The AI's answer for the analysed series (20 slices): suspicious at slice 5."""
    analysis = fake_analysis(slices=20)
    analysis.heatmaps = {
        5: np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    }
    return analysis
