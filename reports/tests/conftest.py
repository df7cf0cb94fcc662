"""Fixtures for report tests: a study processed through the real task with the model
stubbed at the ml adapter (as in diagnosis' tests), with heatmaps where the
phantom's lesion is, and a radiologist's review."""

import numpy as np
import pytest
from django.urls import reverse

from diagnosis import ml_adapter, services
from diagnosis.models import Study, StudyStatus
from diagnosis.tasks import study_process_task
from diagnosis.tests import conftest as diagnosis_fixtures
from ml.synthetic import make_phantom

# diagnosis' fixtures, shared rather than copied: files under tmp_path, the DICOM
# series of a phantom, an active model and the stubbed ml adapter.
files_root = diagnosis_fixtures.files_root
series_dir = diagnosis_fixtures.series_dir
active_model = diagnosis_fixtures.active_model
stub_analysis = diagnosis_fixtures.stub_analysis
uploads_of = diagnosis_fixtures.uploads_of


def lesion_analysis(
    phantom, *, label="stroke", stroke_type="hemorrhagic", volume_ml=None, mapped=3
):
    """What a good model would say about the phantom: high probability on the slices
    with lesion, maps peaking on it (a blurred lesion mask) on the `mapped` most
    suspicious of them; a segmenting model also gives `volume_ml`."""
    import cv2

    area = phantom.mask.sum(axis=(1, 2))
    probs = [float(0.08 + 0.85 * min(a / max(area.max(), 1), 1.0)) for a in area]
    top = [int(i) for i in np.argsort(-area, kind="stable")[:3]]
    heatmaps = {}
    for i in top[:mapped]:
        blurred = cv2.GaussianBlur(phantom.mask[i].astype(np.float32), (0, 0), 3)
        heatmaps[i] = blurred / max(float(blurred.max()), 1e-6)
    probability = max(probs) if label == "stroke" else 0.12
    return ml_adapter.Analysis(
        label=label,
        probability=probability,
        confidence=max(probability, 1 - probability),
        threshold=0.4,
        slice_probabilities=probs,
        suspicious_slices=top,
        stroke_type=stroke_type if label == "stroke" else "",
        type_probabilities={"hemorrhagic": 0.81, "ischemic": 0.19}
        if label == "stroke"
        else {},
        heatmaps=heatmaps,
        timings={"predict": 0.01},
        volume_ml=volume_ml,
    )


@pytest.fixture(scope="session")
def phantom():
    # The same phantom diagnosis' `series_dir` writes as DICOM.
    return make_phantom(label="hemorrhagic", size=64, slices=8, seed=3)


@pytest.fixture
def report_task_calls(monkeypatch):
    """Report tasks enqueued during the test (not run): (args, queue) pairs."""
    calls = []

    def record(args, queue=None, **options):
        calls.append((args, queue))

    monkeypatch.setattr("reports.tasks.report_render_task.apply_async", record)
    return calls


@pytest.fixture
def analysed_study(
    as_clinician, clinician, series_dir, active_model, stub_analysis, monkeypatch
):
    """Upload the phantom series as the clinician and run the real processing task
    with the model answering `analysis` (an Analysis, or an exception it raises)."""
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)

    def analyse(analysis) -> Study:
        as_clinician.post(
            reverse("diagnosis:study-upload"),
            {
                "files": uploads_of(series_dir),
                "patient_age": "67",
                "patient_sex": "F",
                "clinical_notes": "Sudden left-sided weakness, onset 90 minutes ago.",
            },
        )
        study = Study.objects.get(uploaded_by=clinician)
        stub_analysis.next = analysis
        study_process_task.apply(args=[study.pk])
        study.refresh_from_db()
        assert study.status == StudyStatus.READY
        return study

    return analyse


@pytest.fixture
def ready_study(analysed_study, phantom):
    return analysed_study(lesion_analysis(phantom))


@pytest.fixture
def reviewed_study(ready_study, radiologist):
    radiologist.first_name, radiologist.last_name = "Rob", "Reader"
    radiologist.save()
    services.review_submit(
        study=ready_study,
        reviewer=radiologist,
        final_label="stroke",
        stroke_type="hemorrhagic",
        impression="Acute right frontal intraparenchymal haematoma, 3 cm, "
        "no midline shift.",
    )
    return ready_study
