"""The model registry: the promotion gate, the audited override, rollback, uploads,
and the next study analysed by the newly active version without a restart."""

import io
import zipfile

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from diagnosis import ml_adapter as study_adapter
from feedback.models import ModelStatus, ModelVersion


def promote(client, version, reason=""):
    return client.post(
        reverse("feedback:model-promote", args=[version.pk]),
        {"override_reason": reason},
    )


@pytest.fixture
def active(make_version, ready_dataset):
    return make_version(
        status=ModelStatus.ACTIVE, dataset=ready_dataset, auc=0.80, sens=0.90
    )


def test_gate_refuses_a_worse_candidate(as_admin, active, make_version, ready_dataset):
    worse = make_version(dataset=ready_dataset, auc=0.70, sens=0.90)
    page = as_admin.get(reverse("feedback:model-detail", args=[worse.pk]))
    assert "Promotion gate: refuses" in page.text
    assert "AUC 0.700 is below the active model&#x27;s 0.800" in page.text
    promote(as_admin, worse)
    worse.refresh_from_db()
    active.refresh_from_db()
    assert worse.status == ModelStatus.CANDIDATE
    assert active.status == ModelStatus.ACTIVE
    assert not AuditEntry.objects.filter(action="model.promote").exists()


def test_gate_refuses_lower_sensitivity_beyond_the_tolerance(
    as_admin, active, make_version, ready_dataset, settings
):
    settings.PROMOTION_TOLERANCE = 0.05
    within = make_version(dataset=ready_dataset, auc=0.79, sens=0.86)
    beyond = make_version(dataset=ready_dataset, auc=0.95, sens=0.80)
    promote(as_admin, beyond)
    beyond.refresh_from_db()
    assert beyond.status == ModelStatus.CANDIDATE
    promote(as_admin, within)
    within.refresh_from_db()
    assert within.status == ModelStatus.ACTIVE


def test_gate_accepts_a_better_candidate(
    as_admin, admin, active, make_version, ready_dataset
):
    better = make_version(dataset=ready_dataset, auc=0.88, sens=0.92)
    page = as_admin.get(reverse("feedback:model-detail", args=[better.pk]))
    assert "Promotion gate: passes" in page.text and "roc-figure" in page.text
    promote(as_admin, better)
    better.refresh_from_db()
    active.refresh_from_db()
    assert better.status == ModelStatus.ACTIVE
    assert active.status == ModelStatus.RETIRED
    assert better.previous_active == active
    entry = AuditEntry.objects.get(action="model.promote")
    assert entry.actor == admin
    assert entry.detail["gate_passed"] and not entry.detail["override"]


def test_gate_refuses_a_candidate_below_the_specificity_floor(
    as_admin, active, make_version, ready_dataset
):
    """Better AUC and sensitivity do not buy a candidate in that calls 90% of the
    normal studies strokes: it would bury the real strokes in the worklist."""
    eager = make_version(dataset=ready_dataset, auc=0.85, sens=0.97, spec=0.10)
    page = as_admin.get(reverse("feedback:model-detail", args=[eager.pk]))
    gate = page.text.split('data-testid="gate"')[1].split("</div>")[0]
    assert "Promotion gate: refuses" in gate
    assert "Specificity 0.100 is below the floor of 0.5" in gate
    assert "calls 90% of the normal studies of the locked split strokes" in gate
    assert "Promote anyway" in page.text and 'name="override_reason"' in page.text
    assert "calls most normal studies strokes" in page.text  # evaluations table
    promote(as_admin, eager)
    eager.refresh_from_db()
    active.refresh_from_db()
    assert eager.status == ModelStatus.CANDIDATE
    assert active.status == ModelStatus.ACTIVE
    assert not AuditEntry.objects.filter(action="model.promote").exists()
    listing = as_admin.get(reverse("feedback:model-list"))
    row = listing.text.split(f'data-testid="specificity-{eager.pk}">')[1]
    assert row.startswith("0.100") and "low</span>" in row.split("</td>")[0]
    assert f'data-testid="specificity-{active.pk}">0.800<' in listing.text


def test_the_specificity_floor_is_a_setting(
    as_admin, active, make_version, ready_dataset, settings
):
    settings.PROMOTION_MIN_SPECIFICITY = 0.85
    candidate = make_version(dataset=ready_dataset, auc=0.85, sens=0.92, spec=0.81)
    page = as_admin.get(reverse("feedback:model-detail", args=[candidate.pk]))
    assert "Specificity 0.810 is below the floor of 0.85" in page.text
    settings.PROMOTION_MIN_SPECIFICITY = 0.5
    page = as_admin.get(reverse("feedback:model-detail", args=[candidate.pk]))
    assert "Promotion gate: passes" in page.text
    assert 'data-testid="gate-notes"' not in page.text


def test_overriding_the_specificity_floor_needs_a_reason_and_is_audited(
    as_admin, admin, active, make_version, ready_dataset
):
    eager = make_version(dataset=ready_dataset, auc=0.85, sens=0.97, spec=0.10)
    response = promote(as_admin, eager, reason="   ")
    eager.refresh_from_db()
    assert eager.status == ModelStatus.CANDIDATE
    page = as_admin.get(response.url)
    assert "The promotion gate refuses this candidate" in page.text
    promote(as_admin, eager, reason="Second-read pilot: every flag is re-read")
    eager.refresh_from_db()
    assert eager.status == ModelStatus.ACTIVE
    entry = AuditEntry.objects.get(action="model.promote")
    assert entry.actor == admin and entry.detail["override"] is True
    assert entry.detail["override_reason"] == "Second-read pilot: every flag is re-read"
    assert entry.detail["min_specificity"] == 0.5
    assert any("below the floor" in reason for reason in entry.detail["reasons"])
    page = as_admin.get(reverse("feedback:model-detail", args=[eager.pk]))
    assert "Promoted over the gate" in page.text
    assert "Second-read pilot: every flag is re-read" in page.text


def test_a_first_model_below_the_floor_is_refused_too(make_version, ready_dataset):
    """The floors do not need an active model to compare with."""
    from feedback import selectors

    first = make_version(dataset=ready_dataset, auc=0.9, sens=0.99, spec=0.10)
    gate = selectors.promotion_gate(candidate=first)
    assert not gate.allowed
    assert any("below the floor" in reason for reason in gate.reasons)


def test_a_model_not_yet_judged_on_a_locked_split_shows_its_own_figures(
    as_admin, make_version
):
    version = make_version(status=ModelStatus.ACTIVE)
    ModelVersion.objects.filter(pk=version.pk).update(
        metrics={
            "evaluation": "held-out synthetic phantoms",
            "study": {"auc": 0.978, "sensitivity": 0.9, "specificity": 1.0},
        }
    )
    listing = as_admin.get(reverse("feedback:model-list"))
    row = listing.text.split(f'data-testid="model-{version.pk}"')[1].split("</tr>")[0]
    assert "0.978" in row and "own test" in row and "held-out synthetic" in row


def test_a_candidate_judged_on_a_too_small_locked_split_is_refused(
    as_admin, active, make_version, ready_dataset
):
    small = make_version(dataset=ready_dataset, auc=0.9, sens=0.95, studies=6)
    page = as_admin.get(reverse("feedback:model-detail", args=[small.pk]))
    assert "Promotion gate: refuses" in page.text
    assert "holds only 6 studies, fewer than the 20 the gate needs" in page.text
    assert "Stroke type right" not in page.text  # a stroke vs normal model
    assert "[0.80, 0.95]" in page.text  # the candidate's AUC interval
    assert page.text.count("studies by truth and AI call") == 2  # both matrices
    promote(as_admin, small)
    small.refresh_from_db()
    assert small.status == ModelStatus.CANDIDATE


def test_a_locked_split_large_enough_but_small_is_a_note(
    as_admin, active, make_version, ready_dataset, settings
):
    fair = make_version(dataset=ready_dataset, auc=0.9, sens=0.95, studies=25)
    page = as_admin.get(reverse("feedback:model-detail", args=[fair.pk]))
    assert "Promotion gate: passes" in page.text
    notes = page.text.split('data-testid="gate-notes"')[1]
    assert "The locked split holds only 25 studies" in notes
    settings.PROMOTION_MIN_LOCKED_STUDIES = 30
    page = as_admin.get(reverse("feedback:model-detail", args=[fair.pk]))
    assert "holds only 25 studies, fewer than the 30 the gate needs" in page.text


def test_the_auc_reads_the_same_in_the_table_and_the_chart(
    as_admin, active, make_version, ready_dataset
):
    """0.7725 is 0.773 in the table (floatformat rounds half up); the legend and
    the gate's words must not say 0.772 (an f-string's rounding of it)."""
    candidate = make_version(dataset=ready_dataset, auc=0.7725, sens=0.90)
    page = as_admin.get(reverse("feedback:model-detail", args=[candidate.pk]))
    table = page.text.split('data-testid="comparison"')[1].split("</table>")[0]
    assert "0.773 [0.67, 0.82]" in table
    assert f"{candidate} (candidate), AUC 0.773" in page.text  # the ROC legend
    assert "AUC 0.773 is below the active model&#x27;s 0.800" in page.text
    assert "0.772" not in page.text


def test_override_promotes_with_an_audited_reason(
    as_admin, active, make_version, ready_dataset
):
    worse = make_version(dataset=ready_dataset, auc=0.60, sens=0.50)
    promote(as_admin, worse, reason="Vendor model validated on our local audit set")
    worse.refresh_from_db()
    assert worse.status == ModelStatus.ACTIVE
    entry = AuditEntry.objects.get(action="model.promote")
    assert entry.detail["override"] is True
    assert entry.detail["override_reason"].startswith("Vendor model")
    assert any("AUC" in reason for reason in entry.detail["reasons"])
    listing = as_admin.get(reverse("feedback:model-list"))
    assert f'data-testid="override-{worse.pk}">promoted over the gate' in listing.text
    assert f'data-testid="override-{active.pk}"' not in listing.text
    page = as_admin.get(reverse("feedback:model-detail", args=[worse.pk]))
    assert "Vendor model validated on our local audit set" in page.text


def test_candidate_without_an_evaluation_needs_an_override(
    as_admin, active, make_version
):
    unknown = make_version()
    promote(as_admin, unknown)
    unknown.refresh_from_db()
    assert unknown.status == ModelStatus.CANDIDATE


def test_first_model_needs_no_comparison(as_admin, make_version):
    first = make_version()
    promote(as_admin, first)
    first.refresh_from_db()
    assert first.status == ModelStatus.ACTIVE


def test_rollback_restores_the_previous_version(
    as_admin, active, make_version, ready_dataset
):
    better = make_version(dataset=ready_dataset, auc=0.9, sens=0.95)
    promote(as_admin, better)
    listing = as_admin.get(reverse("feedback:model-list"))
    assert 'data-testid="rollback"' in listing.text
    as_admin.post(reverse("feedback:model-rollback", args=[better.pk]))
    active.refresh_from_db()
    better.refresh_from_db()
    assert active.status == ModelStatus.ACTIVE
    assert better.status == ModelStatus.RETIRED
    assert AuditEntry.objects.filter(action="model.rollback").count() == 1


def test_promotion_is_for_admins_only(as_radiologist, api_radiologist, make_version):
    candidate = make_version()
    assert promote(as_radiologist, candidate).status_code == 403
    url = reverse("api:model-version-promote", args=[candidate.pk])
    assert api_radiologist.post(url, {}).status_code == 403
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.CANDIDATE


def test_api_promotion_goes_through_the_gate(
    admin, active, make_version, ready_dataset
):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin)
    worse = make_version(dataset=ready_dataset, auc=0.5, sens=0.5)
    url = reverse("api:model-version-promote", args=[worse.pk])
    assert api.post(url, {}, format="json").status_code == 400
    response = api.post(url, {"override_reason": "trial"}, format="json")
    assert response.status_code == 200


def test_next_study_uses_the_promoted_version_without_restart(
    as_admin, make_ready_study, active_model, make_version, stub_analysis
):
    seen = []
    original = study_adapter.analyse

    def spy(**kwargs):
        seen.append(kwargs["model_sha256"])
        return original(**kwargs)

    stub = study_adapter.analyse
    study_adapter.analyse = spy
    try:
        first = make_ready_study()
        assert first.current_result.model_version == active_model
        newer = make_version()  # no evaluation on either side: the admin overrides
        promote(as_admin, newer, reason="switch test")
        second = make_ready_study()
    finally:
        study_adapter.analyse = stub
    assert second.current_result.model_version == newer
    assert seen == [active_model.sha256, newer.sha256]


def _archive(folder) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, arcname=path.name)
    return buffer.getvalue()


def test_upload_registers_a_candidate_and_queues_the_load_check(
    as_admin, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from ml.modelfile import ModelCard, model_card_save

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"weights")
    model_card_save(
        ModelCard(
            name="vendor",
            version="2",
            architecture="custom_cnn",
            task="binary",
            classes=["normal", "stroke"],
            modality="CT",
            input_shape=[64, 64, 1],
            preprocessing={"size": 64},
        ),
        folder,
    )
    checked = []
    monkeypatch.setattr("feedback.tasks.model_check_task.delay", checked.append)
    upload = SimpleUploadedFile("vendor.zip", _archive(folder))
    with django_capture_on_commit_callbacks(execute=True):
        response = as_admin.post(reverse("feedback:model-list"), {"archive": upload})
    version = ModelVersion.objects.get()
    assert response.status_code == 302
    assert (version.source, version.status) == ("upload", ModelStatus.CANDIDATE)
    assert checked == [version.pk]


def test_upload_of_a_damaged_archive_is_refused(as_admin):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("bad.zip", b"not a zip")
    response = as_admin.post(reverse("feedback:model-list"), {"archive": upload})
    assert response.status_code == 400
    assert "not a zip archive" in response.text
    assert not ModelVersion.objects.exists()


def test_a_model_that_does_not_load_cannot_be_promoted(
    as_admin, make_version, monkeypatch
):
    from feedback import ml_adapter, services

    broken = make_version()

    def fail(path):
        raise ValueError("the Keras file is damaged")

    monkeypatch.setattr(ml_adapter, "model_load_check", fail)
    services.model_version_check(version_id=broken.pk)
    promote(as_admin, broken, reason="please")
    broken.refresh_from_db()
    assert broken.status == ModelStatus.CANDIDATE
    assert "damaged" in broken.load_error


def row_of(listing, version) -> str:
    return listing.text.split(f'data-testid="model-{version.pk}"')[1].split("</tr>")[0]


def test_the_shipped_model_page_shows_the_figures_of_its_list_row(
    as_admin, settings, data_dirs
):
    """The shipped model has no locked-split evaluation: its list row shows its
    card's cross-validation figures, and its page must show the same ones (not "No
    evaluation yet"), with what it was trained on."""
    from django.core.management import call_command

    from feedback.formatting import figure

    settings.SHIPPED_MODEL_DIR = settings.BASE_DIR / "models" / "ich-seg-ctich"
    call_command("model_ensure", stdout=io.StringIO())
    shipped = ModelVersion.objects.get()
    study = shipped.metrics["study"]
    figures = [figure(study[k]) for k in ("auc", "sensitivity", "specificity")]
    row = row_of(as_admin.get(reverse("feedback:model-list")), shipped)
    assert all(f in row for f in figures) and "own test" in row
    page = as_admin.get(reverse("feedback:model-detail", args=[shipped.pk]))
    table = page.text.split('data-testid="evaluations"')[1].split("</table>")[0]
    assert all(f in table for f in figures)
    assert "Its own test (grouped 5-fold CV by patient)" in table
    assert f"<td>{study['n']}</td>" in table
    assert "No evaluation yet" not in page.text
    assert page.text.count('data-figure-id="confusion-card-') == 1
    trained_on = page.text.split('data-testid="training-data"')[1].split("</dd>")[0]
    assert "no fingerprint in its model card" in trained_on
    assert "2093 images, 56 patients" in trained_on


def test_the_shipped_model_keeps_the_specificity_floor_the_gate_holds_others_to(
    as_admin, settings, data_dirs
):
    """model_ensure activates the shipped model without the promotion gate; its
    threshold was chosen to keep the gate's floor, so it is not marked as calling
    most normal studies strokes (the first one, at specificity 0.00, was)."""
    from django.core.management import call_command

    settings.SHIPPED_MODEL_DIR = settings.BASE_DIR / "models" / "ich-seg-ctich"
    call_command("model_ensure", stdout=io.StringIO())
    shipped = ModelVersion.objects.get()
    assert shipped.metrics["study"]["specificity"] >= settings.PROMOTION_MIN_SPECIFICITY
    row = row_of(as_admin.get(reverse("feedback:model-list")), shipped)
    assert "calls most normal studies strokes" not in row
    page = as_admin.get(reverse("feedback:model-detail", args=[shipped.pk]))
    assert "calls most normal studies strokes" not in page.text


def test_a_model_page_shows_its_list_rows_figures_and_job_fingerprint(
    as_admin, make_version, ready_dataset, admin
):
    from feedback.models import RetrainingJob

    job = RetrainingJob.objects.create(
        dataset=ready_dataset, started_by=admin, data_fingerprint="ab" * 32
    )
    version = make_version(dataset=ready_dataset, auc=0.8125, sens=0.9, spec=0.7)
    ModelVersion.objects.filter(pk=version.pk).update(training_job=job)
    row = row_of(as_admin.get(reverse("feedback:model-list")), version)
    assert "0.813" in row and "0.900" in row and "0.700" in row
    page = as_admin.get(reverse("feedback:model-detail", args=[version.pk]))
    table = page.text.split('data-testid="evaluations"')[1].split("</table>")[0]
    assert "0.813 [0.71, 0.86]" in table and "0.900" in table and "0.700" in table
    assert "No evaluation yet" not in page.text
    trained_on = page.text.split('data-testid="training-data"')[1].split("</dd>")[0]
    assert "ab" * 32 in trained_on


def test_a_model_never_evaluated_says_so_on_both_pages(as_admin, make_version):
    version = make_version()
    row = row_of(as_admin.get(reverse("feedback:model-list")), version)
    assert "not evaluated on a locked split" in row
    page = as_admin.get(reverse("feedback:model-detail", args=[version.pk]))
    assert 'data-testid="no-evaluation"' in page.text
