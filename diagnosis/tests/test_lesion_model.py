"""A lesion-feature model in the portal, end to end and unmocked: trained on
synthetic PNG heads, registered and activated, it analyses studies uploaded through
the real upload page in the real Celery task (run in the test, eagerly), and the
study page and the PDF report say what its lesion map shows."""

import io
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from pypdf import PdfReader

from diagnosis import ml_adapter
from diagnosis.models import AIResult, Study, StudyStatus
from diagnosis.tasks import study_process_task
from feedback.services import model_version_activate, model_version_register
from ml.tests import lesion_factories as factories

from .conftest import uploads_of

pytestmark = pytest.mark.slow

BLEED_SEED = factories.HELD_OUT_SEED + 1  # held-out heads: the model never saw them
NORMAL_SEED = factories.HELD_OUT_SEED + 2


@pytest.fixture(scope="module")
def lesion_model_dir(tmp_path_factory):
    return factories.train_lesion_model(tmp_path_factory.mktemp("lesion-model"))


@pytest.fixture
def lesion_model(db, lesion_model_dir):
    ml_adapter._loaded.clear()
    version = model_version_register(path=lesion_model_dir)
    return model_version_activate(version=version)


@pytest.fixture
def worker(monkeypatch):
    """An upload's processing task runs at once, in the test; reports stay queued."""
    monkeypatch.setattr(
        "diagnosis.tasks.study_process_task.delay",
        lambda pk: study_process_task.apply(args=[pk]),
    )
    monkeypatch.setattr(
        "reports.tasks.report_render_task.apply_async", lambda *a, **kw: None
    )


@pytest.fixture
def upload(as_clinician, worker, django_capture_on_commit_callbacks):
    """Upload PNG slices through the real page as the clinician; the study after its
    processing task has run."""

    def send(paths) -> Study:
        files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths]
        with django_capture_on_commit_callbacks(execute=True):
            response = as_clinician.post(
                reverse("diagnosis:study-upload"),
                {"files": files},
                HTTP_ACCEPT="application/json",
            )
        assert response.status_code == 201, response.content
        return Study.objects.get(pk=response.json()["study"])

    return send


def opaque(png: bytes) -> np.ndarray:
    """(H, W) alpha of an RGBA heatmap PNG."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[..., 3]


def words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_uploaded_bleed_is_flagged_first_and_its_lesion_map_lies_on_the_bleed(
    lesion_model, upload, as_radiologist, tmp_path
):
    bleed = factories.write_study(tmp_path / "b", bleed=True, seed=BLEED_SEED)
    normal = factories.write_study(
        tmp_path / "n", bleed=False, seed=NORMAL_SEED, scan_number=2
    )
    study, other = upload(bleed.paths), upload(normal.paths)

    assert study.status == StudyStatus.READY, study.error_message
    assert other.status == StudyStatus.READY, other.error_message
    assert study.current_result.model_version == lesion_model
    assert (study.ai_label, other.ai_label) == ("stroke", "normal")
    assert study.priority > other.priority
    worklist = as_radiologist.get(reverse("diagnosis:study-list")).content.decode()
    first = worklist.index(reverse("diagnosis:study-detail", args=[study.pk]))
    assert first < worklist.index(reverse("diagnosis:study-detail", args=[other.pk]))

    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk]))
    html = page.content.decode()
    assert 'data-ai-label="stroke"' in html and "Suspected stroke" in html
    heat_slices = page.context["viewer"]["overlays"]
    top = study.current_result.suspicious_slices[0]
    assert top in heat_slices and top in bleed.bleed_slices
    # A lesion map is cheap: every slice the bleed spans that the model reads (a
    # brain slice) is outlined, not just the three most suspicious.
    read = {s.index: s.probability for s in study.slices.all()}
    spanned = [k for k in bleed.bleed_slices if read[k] is not None]
    assert len(spanned) > 3 and set(spanned) <= set(heat_slices), (spanned, heat_slices)
    # Slices with too little brain are not read: no probability, said so on the page.
    unread = [k for k, p in read.items() if p is None]
    assert unread and all(f"Slice {k + 1}: not read by the AI" in html for k in unread)
    assert "grey: not read (too little brain)" in html
    response = as_radiologist.get(
        reverse("diagnosis:heatmap-image", args=[study.pk, top])
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    alpha = opaque(b"".join(response.streaming_content))
    assert alpha.shape == bleed.mask[top].shape
    assert (alpha > 0)[bleed.mask[top]].any()  # the map overlaps the bleed
    peak = np.unravel_index(int(np.argmax(alpha)), alpha.shape)
    assert bleed.mask[top][peak], "the brightest point of the map misses the bleed"


def test_study_without_a_brain_is_ready_outside_what_the_model_was_trained_for(
    lesion_model, upload, as_clinician, tmp_path
):
    paths = factories.write_slices(factories.empty_ring_slices(), tmp_path)
    study = upload(paths)

    # Not a failure: the images can be read, the model just has nothing to say.
    assert study.status == StudyStatus.READY
    reason = study.outside_scope_reason
    assert re.search(r"does not look like an? (axial )?head CT", reason)
    assert not AIResult.objects.filter(study=study).exists()
    html = as_clinician.get(
        reverse("diagnosis:study-detail", args=[study.pk])
    ).content.decode()
    page = words(html)
    assert "Outside what the model was trained for: it does not look like" in page
    assert "The analysis failed." not in page
    assert "Stroke probability" not in page and "No AI result yet." not in page
    # The images are there to read without AI support.
    assert 'id="viewer"' in html and "No slices to view" not in page


def test_lesion_model_page_and_report_say_what_the_lesion_map_shows(
    lesion_model, upload, as_radiologist, tmp_path
):
    study = upload(factories.write_study(tmp_path, bleed=True, seed=BLEED_SEED).paths)
    page = words(
        as_radiologist.get(
            reverse("diagnosis:study-detail", args=[study.pk])
        ).content.decode()
    )
    assert "Lesion map" in page and "Heatmap" not in page
    assert "candidate hyperdense regions the model found" in page
    assert "The model looks for regions of the skull-stripped brain" in page
    assert "It cannot exclude ischaemic stroke without a hyperdense sign" in page

    response = as_radiologist.get(reverse("reports:study-pdf", args=[study.pk]))
    report = pdf_words(b"".join(response.streaming_content))
    assert "right: lesion map of the candidate hyperdense regions" in report
    assert "regions that drove the AI" not in report
    assert "It cannot exclude ischaemic stroke" in report


def test_grad_cam_model_keeps_its_heatmap_words(
    active_model,
    stub_analysis,
    as_clinician,
    as_radiologist,
    series_dir,
    worker,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        as_clinician.post(
            reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
        )
    study = Study.objects.get()
    assert study.status == StudyStatus.READY
    page = words(
        as_radiologist.get(
            reverse("diagnosis:study-detail", args=[study.pk])
        ).content.decode()
    )
    assert "Heatmap" in page and "heatmap of the regions that drove the AI" in page
    assert "Lesion map" not in page and "The model looks for" not in page

    response = as_radiologist.get(reverse("reports:study-pdf", args=[study.pk]))
    report = pdf_words(b"".join(response.streaming_content))
    assert "right: heatmap of the regions that drove the AI" in report
    assert "lesion map" not in report.lower()


def pdf_words(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())
