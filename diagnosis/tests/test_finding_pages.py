"""What a model's finding looks like to its readers: the words its card declares
(hemorrhage or stroke), the lesion volume, the lesion outline of a segmenting model,
the slice the viewer opens on, and the demo-model marks — through the real upload,
task (run eagerly) and pages, with the model stubbed at the ml adapter."""

import io
import re

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from diagnosis.models import Study
from diagnosis.tasks import study_process_task
from feedback.models import ModelStatus, ModelVersion

from .conftest import fake_analysis, uploads_of

SEGMENTING_CARD = {
    "task": "binary",
    "extra": {
        "finding": "hemorrhage",
        "explanation": "segmentation",
        "contour_level": 0.5,
    },
}


@pytest.fixture
def hemorrhage_model(db):
    return ModelVersion.objects.create(
        name="hemorrhage_seg",
        version="1",
        architecture="unet",
        task="binary",
        classes=["normal", "stroke"],
        modality="CT",
        path="/nonexistent",
        sha256="1" * 64,
        status=ModelStatus.ACTIVE,
        threshold=0.5,
        card=SEGMENTING_CARD,
    )


@pytest.fixture
def analysed(as_clinician, stub_analysis, monkeypatch, tmp_path):
    """Upload a synthetic series as the clinician and run its task with `analysis`
    as the model's answer; returns the study."""
    from ml.synthetic import make_phantom, write_dicom_series

    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)

    def run(analysis, *, name="case", seed=0) -> Study:
        folder = tmp_path / name
        write_dicom_series(
            make_phantom(size=64, slices=8, seed=seed), folder, patient_id=f"MRN-{name}"
        )
        as_clinician.post(
            reverse("diagnosis:study-upload"), {"files": uploads_of(folder)}
        )
        study = Study.objects.order_by("-pk").first()
        stub_analysis.next = analysis
        study_process_task.apply(args=[study.pk])
        study.refresh_from_db()
        return study

    return run


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def text(response) -> str:
    return text_of(response.content.decode())


def page_of(client, study):
    return client.get(reverse("diagnosis:study-detail", args=[study.pk]))


def disk(radius: int, inside: float, outside: float, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    inside_disk = (yy - 32) ** 2 + (xx - 32) ** 2 <= radius**2
    return np.where(inside_disk, inside, outside).astype(np.float32)


def bleed_analysis(**fields):
    analysis = fake_analysis("stroke", 0.93, stroke_type="")
    analysis.volume_ml = 12.4
    analysis.heatmaps = {5: disk(10, 0.9, 0.1), 4: disk(10, 0.3, 0.05)}
    for key, value in fields.items():
        setattr(analysis, key, value)
    return analysis


def test_hemorrhage_result_is_worded_with_its_volume_everywhere(
    hemorrhage_model, analysed, as_clinician, as_radiologist, api_radiologist
):
    study = analysed(bleed_analysis())

    assert study.current_result.volume_ml == pytest.approx(12.4)
    page = text(page_of(as_radiologist, study))
    assert "Suspected intracranial hemorrhage · 12 mL · 93%" in page
    assert "Lesion volume 12 mL" in page and "Hemorrhage probability" in page
    assert "Suspected stroke" not in page
    for client in (as_radiologist, as_clinician):  # worklist and clinician's list
        listing = text(client.get(reverse("diagnosis:study-list")))
        assert "Suspected intracranial hemorrhage · 12 mL · 93%" in listing
    detail = api_radiologist.get(reverse("api:study-detail", args=[study.pk])).json()
    assert detail["result"]["finding"] == "Suspected intracranial hemorrhage · 12 mL"
    assert detail["result"]["volume_ml"] == pytest.approx(12.4)


def test_negative_hemorrhage_result_says_it_does_not_exclude_ischemia(
    hemorrhage_model, analysed, as_radiologist
):
    study = analysed(bleed_analysis(label="normal", probability=0.08, confidence=0.92))

    page = text(page_of(as_radiologist, study))
    assert (
        "No hemorrhage suspected · 8% — this does not exclude an ischemic stroke."
        in page
    )
    assert "Lesion volume" not in page  # no volume for a bleed it did not find
    listing = text(as_radiologist.get(reverse("diagnosis:study-list")))
    assert "No hemorrhage suspected · 8%" in listing
    assert "No stroke suspected" not in listing


def test_result_history_words_each_result_as_its_model_did(
    hemorrhage_model, analysed, admin, as_radiologist, stub_analysis
):
    from diagnosis import services

    study = analysed(bleed_analysis())
    stub_analysis.next = bleed_analysis(label="normal", probability=0.2)
    services.study_reprocess(study=study, by=admin)
    study_process_task.apply(args=[study.pk])

    page = text(page_of(as_radiologist, study))
    history = page[page.index("History") :]
    assert "Suspected intracranial hemorrhage · 12 mL 93% (replaced)" in history
    assert "No hemorrhage suspected 20%" in history


def test_segmenting_model_outlines_the_lesion_on_the_slices_that_have_one(
    hemorrhage_model, analysed, as_radiologist
):
    study = analysed(bleed_analysis())

    response = page_of(as_radiologist, study)
    html = response.content.decode()
    # Slice 4's map never reaches the contour level: no overlay, no marker.
    assert response.context["viewer"]["overlays"] == [5]
    assert 'data-layer="lesion outline"' in html
    page = text(response)
    assert "Lesion outline" in page and "Heatmap" not in page
    assert "outline of the lesion the model segmented" in page
    assert "lesion probability of 50% or more" in page
    missing = as_radiologist.get(reverse("diagnosis:heatmap-image", args=[study.pk, 4]))
    assert missing.status_code == 404

    overlay = as_radiologist.get(reverse("diagnosis:heatmap-image", args=[study.pk, 5]))
    rgba = np.asarray(
        Image.open(io.BytesIO(b"".join(overlay.streaming_content))).convert("RGBA")
    )
    alpha = rgba[..., 3]
    assert alpha[32, 42] == 255 and tuple(rgba[32, 42, :3]) == (255, 221, 0)
    assert 0 < alpha[32, 32] < 100  # a faint fill inside, the slice shows through
    assert alpha[2, 2] == 0 and alpha[32, 50] == 0  # nothing outside the outline


def test_viewer_opens_on_the_most_suspicious_brain_slice(
    hemorrhage_model, analysed, as_radiologist
):
    # The model's raw top slice is the vertex (slice 8), which it did not read.
    probs = [0.0, 0.2, 0.4, 0.81, 0.3, 0.6, 0.1, 0.97]
    read = [False, True, True, True, True, True, True, False]
    study = analysed(
        bleed_analysis(
            slice_probabilities=probs, read_slices=read, suspicious_slices=[7, 3, 5]
        )
    )

    response = page_of(as_radiologist, study)
    html = response.content.decode()
    assert response.context["viewer"]["start"] == 3
    assert "Slice 8: not read by the AI" in html


def test_demo_model_results_are_marked_in_every_list_and_on_the_page(
    active_model, analysed, as_clinician, as_radiologist, as_admin
):
    ModelVersion.objects.filter(pk=active_model.pk).update(
        is_demo=True, metrics={"study": {"auc": 0.804, "sensitivity": 0.8}}
    )
    study = analysed(fake_analysis("stroke", 0.91))

    explanation = "Demo model trained on synthetic phantoms — its results on real scans"
    for client in (as_radiologist, as_clinician):
        body = client.get(reverse("diagnosis:study-list")).content.decode()
        row = body[body.index(f'data-study="{study.pk}"') :].split("</tr>")[0]
        assert "demo model" in row and explanation in row  # hover words
    page = text(page_of(as_clinician, study))
    assert f"demo model {explanation} are not meaningful." in page

    models = as_admin.get(reverse("feedback:model-list")).content.decode()
    row = models[models.index(f'data-testid="model-{active_model.pk}"') :]
    row = text_of(row.split("</tr>")[0])
    assert "0.804 on synthetic phantoms" in row and "own test" not in row
    assert "demo model" in row


def test_a_real_models_results_carry_no_demo_mark(
    active_model, analysed, as_radiologist
):
    study = analysed(fake_analysis("stroke", 0.91))
    body = as_radiologist.get(reverse("diagnosis:study-list")).content.decode()
    assert "demo model" not in body
    assert "synthetic phantoms" not in text(page_of(as_radiologist, study))


def test_segmenting_model_is_asked_to_outline_every_read_slice(monkeypatch):
    from types import SimpleNamespace

    from diagnosis import ml_adapter

    class Segmenter:
        card = SimpleNamespace(extra={"explanation": "segmentation"})
        asked: list[int] = []

        def predict(self, load_result, progress=None):
            return SimpleNamespace(
                label="stroke",
                study_probability=0.9,
                confidence=0.9,
                threshold=0.5,
                # 20 slices: the neck and vertex are not read; two brain slices
                # show nothing at all.
                slice_probabilities=[0.0] * 2 + [0.0, 0.0] + [0.3] * 14 + [0.0] * 2,
                top_slices=[4, 5, 6],
                read_slices=[False] * 2 + [True] * 16 + [False] * 2,
                stroke_type="",
                type_probabilities={},
                timings={},
                volume_ml=3.0,
            )

        def explain(self, load_result, *, slices):
            self.asked = list(slices)
            return {}

    segmenter = Segmenter()
    monkeypatch.setattr(ml_adapter, "_predictor", lambda path, sha: segmenter)
    analysis = ml_adapter.analyse(load_result=None, model_path="", model_sha256="")

    assert sorted(segmenter.asked) == list(range(4, 18))  # not just the top three
    assert analysis.volume_ml == 3.0


def test_viewer_opens_in_the_middle_of_slices_that_share_the_top_probability():
    from diagnosis.models import Slice
    from diagnosis.selectors import viewer_start_slice

    probabilities = [None, 0.2, 0.914, 0.914, 0.914, 0.914, 0.914, 0.5, None]
    slices = [Slice(index=i, probability=p) for i, p in enumerate(probabilities)]
    # a large bleed saturates slices 2-6: open on its centre, not its lowest edge
    assert viewer_start_slice(slices=slices, result=None) == 4
