"""Feedback cases: opened by a disagreeing review, confirmed by a second reader,
rejected with a reason, kept with protected links."""

import pytest
from django.db.models import ProtectedError
from django.urls import reverse

from accounts.models import AuditEntry
from feedback.models import CaseKind, CaseStatus, FeedbackCase


def review(client, study, label, stroke_type=""):
    return client.post(
        reverse("diagnosis:study-review", args=[study.pk]),
        {"final_label": label, "stroke_type": stroke_type},
    )


def test_disagreeing_review_opens_a_pending_case(
    make_ready_study, as_radiologist, radiologist, active_model
):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    case = FeedbackCase.objects.get(study=study)
    assert case.status == CaseStatus.PENDING
    assert case.kind == CaseKind.MISCLASSIFIED
    assert (case.ai_label, case.final_label) == ("stroke", "normal")
    assert case.model_version == active_model
    assert case.ai_result == study.current_result
    assert case.reported_by == radiologist
    assert AuditEntry.objects.filter(action="feedback.create").exists()


def test_agreeing_review_opens_no_case(make_ready_study, as_radiologist):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "stroke", "hemorrhagic")
    assert not FeedbackCase.objects.exists()


def test_queue_lists_pending_cases_with_the_viewer_a_click_away(
    make_ready_study, as_radiologist, as_radiologist2
):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    page = as_radiologist2.get(reverse("feedback:case-list"))
    assert page.status_code == 200
    assert reverse("diagnosis:study-detail", args=[study.pk]) in page.text
    assert 'data-testid="count-pending">1 pending' in page.text
    row = page.text.split(f'data-testid="case-{FeedbackCase.objects.get().pk}"')[1]
    row = row.split("</tr>")[0]
    assert "Suspected stroke (hemorrhagic) · 91%" in row  # what the AI said
    assert "<strong>No stroke</strong>" in row  # what the reader said
    assert "patient MRN-0042" in row  # the series' DICOM PatientID


def test_the_queue_words_the_ai_call_as_the_model_card_does(
    make_ready_study, as_radiologist, as_radiologist2, active_model
):
    card = dict(active_model.card)
    card["extra"] = {**card.get("extra", {}), "finding": "hemorrhage"}
    active_model.card = card
    active_model.save(update_fields=["card"])
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    page = as_radiologist2.get(reverse("feedback:case-list")).text
    row = page.split(f'data-testid="case-{FeedbackCase.objects.get().pk}"')[1]
    assert "Suspected intracranial hemorrhage" in row.split("</tr>")[0]


def test_reporter_cannot_confirm_their_own_case(make_ready_study, as_radiologist):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    case = FeedbackCase.objects.get()
    response = as_radiologist.post(reverse("feedback:case-confirm", args=[case.pk]))
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == CaseStatus.PENDING


@pytest.mark.parametrize("confirmer", ["as_radiologist2", "as_admin"])
def test_second_radiologist_or_admin_confirms(
    make_ready_study, as_radiologist, confirmer, request
):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    case = FeedbackCase.objects.get()
    client = request.getfixturevalue(confirmer)
    client.post(reverse("feedback:case-confirm", args=[case.pk]))
    case.refresh_from_db()
    assert case.status == CaseStatus.CONFIRMED
    assert case.decided_by is not None and case.decided_at is not None
    assert AuditEntry.objects.filter(action="feedback.confirm").count() == 1


def test_single_confirmation_setting_counts_the_first_reader(
    make_ready_study, as_radiologist, settings
):
    settings.FEEDBACK_SINGLE_CONFIRMATION = True
    study = make_ready_study(label="normal", probability=0.1)
    review(as_radiologist, study, "stroke", "ischemic")
    case = FeedbackCase.objects.get()
    assert case.status == CaseStatus.CONFIRMED
    assert case.stroke_type == "ischemic"


def test_rejection_needs_a_reason(make_ready_study, as_radiologist, as_radiologist2):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    case = FeedbackCase.objects.get()
    url = reverse("feedback:case-reject", args=[case.pk])
    as_radiologist2.post(url, {"reason": "  "})
    case.refresh_from_db()
    assert case.status == CaseStatus.PENDING
    as_radiologist2.post(url, {"reason": "Motion artefact, label unreliable"})
    case.refresh_from_db()
    assert case.status == CaseStatus.REJECTED
    assert case.rejection_reason == "Motion artefact, label unreliable"
    entry = AuditEntry.objects.get(action="feedback.reject")
    assert entry.detail["reason"] == "Motion artefact, label unreliable"


def test_a_later_reading_supersedes_the_pending_case(
    make_ready_study, as_radiologist, as_radiologist2
):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    review(as_radiologist2, study, "stroke", "hemorrhagic")  # agrees after all
    case = FeedbackCase.objects.get()
    assert case.status == CaseStatus.REJECTED
    assert "Superseded" in case.rejection_reason


def test_hard_case_flagged_by_a_radiologist(
    make_ready_study, as_radiologist, radiologist
):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "stroke", "hemorrhagic")
    as_radiologist.post(
        reverse("feedback:case-flag"), {"study": study.pk, "note": "tiny bleed"}
    )
    case = FeedbackCase.objects.get()
    assert case.kind == CaseKind.HARD and case.note == "tiny bleed"
    assert case.final_label == "stroke" and case.reported_by == radiologist


def test_unread_study_cannot_be_flagged(make_ready_study, as_radiologist):
    study = make_ready_study(label="stroke")
    as_radiologist.post(reverse("feedback:case-flag"), {"study": study.pk})
    assert not FeedbackCase.objects.exists()


def test_cases_keep_their_study_and_result(make_ready_study, as_radiologist):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    with pytest.raises(ProtectedError):
        study.current_result.delete()


def test_clinicians_see_no_cases(make_ready_study, as_radiologist, as_clinician):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    case = FeedbackCase.objects.get()
    assert as_clinician.get(reverse("feedback:case-list")).status_code == 403
    response = as_clinician.post(reverse("feedback:case-confirm", args=[case.pk]))
    assert response.status_code == 403


def test_a_study_shows_its_feedback_cases_to_readers_only(
    make_ready_study, as_radiologist, as_radiologist2, radiologist, clinician
):
    """What the study page may list: case numbers and their confirmation are the
    training loop's, for radiologists and admins; the clinician has the reading."""
    from feedback import selectors

    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    case = FeedbackCase.objects.get()
    as_radiologist2.post(reverse("feedback:case-confirm", args=[case.pk]))
    assert list(selectors.case_list_for_study(user=radiologist, study=study)) == [case]
    assert not selectors.case_list_for_study(user=clinician, study=study).exists()


def test_a_clinician_sees_the_reading_not_the_training_feedback(
    make_ready_study, as_radiologist, as_radiologist2, as_clinician
):
    study = make_ready_study(label="stroke")
    review(as_radiologist, study, "normal")
    case = FeedbackCase.objects.get()
    as_radiologist2.post(reverse("feedback:case-confirm", args=[case.pk]))
    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert f"Training feedback case {case.pk}: confirmed" in page.text
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert 'data-testid="current-review"' in page.text  # the reading itself
    assert "differs from the AI" in page.text
    assert "Training feedback case" not in page.text
    assert 'data-testid="feedback-case"' not in page.text
