"""Worklist order and filters, study access by role, the viewer's images, reviews —
through the real pages and API."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from diagnosis import services
from diagnosis.models import Review, Study, StudyStatus
from diagnosis.tasks import study_process_task

from .conftest import fake_analysis, uploads_of


@pytest.fixture
def no_enqueue(monkeypatch):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)


def make_ready(client, folder, stub, analysis, **fields) -> Study:
    client.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(folder), **fields}
    )
    study = Study.objects.order_by("-pk").first()
    stub.next = analysis
    study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    return study


@pytest.fixture
def three_studies(as_clinician, tmp_path, active_model, stub_analysis, no_enqueue):
    """A sure bleed, a possible infarct and a normal study, uploaded in the order
    normal, infarct, bleed (so waiting time alone would order them wrongly)."""
    from ml.synthetic import make_phantom, write_dicom_series

    studies = {}
    cases = [
        ("normal", 0.1, ""),
        ("infarct", 0.62, "ischemic"),
        ("bleed", 0.97, "hemorrhagic"),
    ]
    for seed, (name, p, kind) in enumerate(cases):
        folder = tmp_path / name
        write_dicom_series(
            make_phantom(size=48, slices=8, seed=seed), folder, patient_id=f"MRN-{name}"
        )
        label = "normal" if name == "normal" else "stroke"
        studies[name] = make_ready(
            as_clinician,
            folder,
            stub_analysis,
            fake_analysis(label, p, stroke_type=kind),
        )
    return studies


def worklist_ids(client, **params) -> list[int]:
    response = client.get(reverse("api:study-list"), params)
    return [row["id"] for row in response.json()["results"]]


def test_worklist_puts_sure_strokes_first(three_studies, api_radiologist):
    s = three_studies
    assert worklist_ids(api_radiologist) == [
        s["bleed"].pk,
        s["infarct"].pk,
        s["normal"].pk,
    ]


def test_reviewed_studies_sink_and_waiting_time_breaks_ties(
    three_studies, radiologist, api_radiologist
):
    s = three_studies
    services.review_submit(
        study=s["bleed"],
        reviewer=radiologist,
        final_label="stroke",
        stroke_type="hemorrhagic",
    )
    Study.objects.filter(pk=s["infarct"].pk).update(priority=s["normal"].priority)
    Study.objects.filter(pk=s["normal"].pk).update(
        created_at=timezone.now() - timedelta(hours=3)
    )
    assert worklist_ids(api_radiologist) == [
        s["normal"].pk,
        s["infarct"].pk,
        s["bleed"].pk,
    ]


def test_worklist_page_shows_badges_counts_and_filters(three_studies, as_radiologist):
    body = as_radiologist.get(reverse("diagnosis:study-list")).content.decode()
    assert (
        body.index("MRN-bleed") < body.index("MRN-infarct") < body.index("MRN-normal")
    )
    assert "Suspected stroke (hemorrhagic) · 97%" in body
    assert "3 to review" in body
    filtered = as_radiologist.get(
        reverse("diagnosis:study-list"), {"ai_label": "normal"}
    ).content.decode()
    assert "MRN-normal" in filtered and "MRN-bleed" not in filtered
    search = as_radiologist.get(
        reverse("diagnosis:study-list"), {"patient_id": "infarct"}
    ).content.decode()
    assert "MRN-infarct" in search and "MRN-normal" not in search


def test_invalid_filter_is_reported_not_ignored(three_studies, as_radiologist):
    body = as_radiologist.get(
        reverse("diagnosis:study-list"), {"date_from": "soon"}
    ).content.decode()
    assert "not valid" in body and "MRN-bleed" not in body


def test_pulse_changes_when_a_study_changes(three_studies, as_radiologist):
    url = reverse("diagnosis:study-list-pulse")
    before = as_radiologist.get(url).json()["version"]
    Study.objects.filter(pk=three_studies["normal"].pk).update(
        updated_at=timezone.now() + timedelta(seconds=5)
    )
    assert as_radiologist.get(url).json()["version"] != before


def test_pulse_counts_follow_a_study_that_becomes_ready(
    three_studies, as_radiologist, as_clinician, tmp_path, stub_analysis
):
    """The worklist refreshes its count badges from the pulse it polls."""
    from ml.synthetic import make_phantom, write_dicom_series

    url = reverse("diagnosis:study-list-pulse")
    before = as_radiologist.get(url).json()
    folder = tmp_path / "late"
    write_dicom_series(make_phantom(size=48, slices=8, seed=7), folder)
    make_ready(as_clinician, folder, stub_analysis, fake_analysis("stroke", 0.9))
    cache.clear()  # counts are shared for COUNTS_CACHE_SECONDS: let them expire
    after = as_radiologist.get(url).json()
    assert (before["counts"]["ready"], before["counts"]["to_review"]) == (3, 3)
    assert (after["counts"]["ready"], after["counts"]["to_review"]) == (4, 4)
    assert after["version"] != before["version"]


def test_every_count_badge_is_fed_by_the_pulse(three_studies, as_radiologist):
    page = as_radiologist.get(reverse("diagnosis:study-list")).content.decode()
    badges = set(re.findall(r'data-count="([^"]+)"', page))
    counts = as_radiologist.get(reverse("diagnosis:study-list-pulse")).json()["counts"]
    assert badges == {"to_review", "queued", "processing", "ready", "failed"}
    assert badges <= counts.keys()


def test_clinicians_see_only_their_studies(three_studies, as_outsider, api_clinician):
    assert len(worklist_ids(api_clinician)) == 3
    body = as_outsider.get(reverse("diagnosis:study-list")).content.decode()
    assert "MRN-bleed" not in body


def study_urls(study) -> list[str]:
    pk = study.pk
    return [
        reverse("diagnosis:study-detail", args=[pk]),
        reverse("diagnosis:study-status", args=[pk]),
        reverse("diagnosis:slice-image", args=[pk, 0]),
        reverse("diagnosis:heatmap-image", args=[pk, 5]),
        reverse("api:study-detail", args=[pk]),
    ]


def test_outsider_gets_404_on_every_study_url(three_studies, as_outsider):
    for url in study_urls(three_studies["bleed"]):
        assert as_outsider.get(url).status_code == 404, url
    review = reverse("diagnosis:study-review", args=[three_studies["bleed"].pk])
    assert as_outsider.post(review, {"final_label": "normal"}).status_code == 403
    assert not Review.objects.exists()


@pytest.mark.parametrize("persona", ["as_clinician", "as_radiologist", "as_admin"])
def test_uploader_radiologists_and_admins_open_the_study(
    persona, request, three_studies
):
    client = request.getfixturevalue(persona)
    for url in study_urls(three_studies["bleed"]):
        assert client.get(url).status_code == 200, url


def test_every_study_read_is_audited(three_studies, as_radiologist, radiologist):
    for url in study_urls(three_studies["bleed"])[:4]:
        as_radiologist.get(url)
    actions = set(
        AuditEntry.objects.filter(actor=radiologist).values_list("action", flat=True)
    )
    assert {"study.view", "study.image_view", "study.heatmap_view"} <= actions


def test_slice_image_follows_the_window(three_studies, as_radiologist):
    url = reverse("diagnosis:slice-image", args=[three_studies["bleed"].pk, 4])
    brain = as_radiologist.get(url, {"window": "brain"})
    bone = as_radiologist.get(url, {"window": "bone"})
    custom = as_radiologist.get(url, {"window": "custom", "c": "40", "w": "80"})
    assert brain["Content-Type"] == "image/png"
    assert brain.content != bone.content
    assert custom.content == brain.content
    assert as_radiologist.get(url, {"window": "custom", "c": "x"}).status_code == 404
    past_end = reverse("diagnosis:slice-image", args=[three_studies["bleed"].pk, 99])
    assert as_radiologist.get(past_end).status_code == 404


def test_study_page_has_viewer_ai_panel_and_decision_support_notice(
    three_studies, as_radiologist
):
    response = as_radiologist.get(
        reverse("diagnosis:study-detail", args=[three_studies["bleed"].pk])
    )
    body = response.content.decode()
    assert 'id="viewer"' in body and response.context["viewer"]["overlays"] == [5]
    assert "unit-test model 1" in body
    assert "Decision support only" in body
    assert body.count('class="prob-bar') == 8


def test_radiologist_agrees_with_one_click(three_studies, as_radiologist):
    study = three_studies["bleed"]
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[study.pk]), {"agree": "1"}
    )
    review = study.current_review
    assert (review.final_label, review.stroke_type, review.agrees_with_ai) == (
        "stroke",
        "hemorrhagic",
        True,
    )


def test_changed_review_keeps_history(three_studies, as_radiologist):
    study = three_studies["infarct"]
    url = reverse("diagnosis:study-review", args=[study.pk])
    as_radiologist.post(
        url,
        {
            "final_label": "stroke",
            "stroke_type": "ischemic",
            "impression": "Left MCA infarct.",
        },
    )
    as_radiologist.post(url, {"final_label": "normal", "impression": "Artefact."})
    reviews = list(study.reviews.order_by("created_at"))
    assert [(r.final_label, r.is_current) for r in reviews] == [
        ("stroke", False),
        ("normal", True),
    ]
    assert reviews[-1].agrees_with_ai is False
    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert "differs from the AI" in page.content.decode()


def test_clinician_cannot_review(three_studies, as_clinician):
    url = reverse("diagnosis:study-review", args=[three_studies["bleed"].pk])
    assert as_clinician.post(url, {"final_label": "normal"}).status_code == 403


def test_review_through_the_api(three_studies, api_radiologist, api_clinician):
    url = reverse("api:study-review", args=[three_studies["normal"].pk])
    response = api_radiologist.post(url, {"final_label": "normal"}, format="json")
    assert response.status_code == 201 and response.json()["agrees_with_ai"] is True
    assert api_clinician.post(url, {"final_label": "normal"}).status_code == 403
    bad = api_radiologist.post(url, {"final_label": "maybe"}, format="json")
    assert bad.status_code == 400 and "final_label" in bad.json()


def test_review_before_the_result_is_refused(
    as_clinician, series_dir, as_radiologist, no_enqueue
):
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
    )
    study = Study.objects.get()
    response = as_radiologist.post(
        reverse("diagnosis:study-review", args=[study.pk]),
        {"final_label": "normal"},
        follow=True,
    )
    assert "review it once ready" in response.content.decode()
    assert study.status == StudyStatus.QUEUED and not Review.objects.exists()


def test_api_detail_carries_result_and_slice_probabilities(
    three_studies, api_radiologist
):
    body = api_radiologist.get(
        reverse("api:study-detail", args=[three_studies["bleed"].pk])
    ).json()
    assert body["status"] == "ready"
    assert body["result"]["label"] == "stroke"
    assert body["result"]["model_version"] == "unit-test model 1"
    assert len(body["slice_probabilities"]) == 8
    assert body["seconds_to_result"] is not None


def test_schema_and_docs_are_served_locally(as_radiologist):
    schema = as_radiologist.get(reverse("schema"))
    assert schema.status_code == 200 and b"/api/v1/studies/" in schema.content
    docs = as_radiologist.get(reverse("api-docs")).content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()


def test_disagreeing_review_shows_its_feedback_case(three_studies, as_radiologist):
    study = three_studies["bleed"]
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[study.pk]),
        {"final_label": "normal", "impression": "Calcification."},
    )
    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert "Training feedback case" in page.content.decode()
    assert study.feedback_cases.count() == 1


def test_hard_case_is_flagged_from_the_study_page(three_studies, as_radiologist):
    study = three_studies["infarct"]
    url = reverse("diagnosis:study-detail", args=[study.pk])
    assert "this was hard to read" not in as_radiologist.get(url).content.decode()
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[study.pk]), {"agree": "1"}
    )
    assert "this was hard to read" in as_radiologist.get(url).content.decode()
    as_radiologist.post(
        reverse("feedback:case-flag"),
        {"study": study.pk, "note": "Flagged from the study page"},
    )
    assert study.feedback_cases.count() == 1
