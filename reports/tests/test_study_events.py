"""Reports and feedback follow diagnosis through its signals (diagnosis imports
neither): a study that becomes ready and a saved reading each queue the report of
the study's new state, once committed; a reading that disagrees with the AI opens a
feedback case with it."""

from diagnosis import services as diagnosis_services
from feedback.models import FeedbackCase

from .conftest import lesion_analysis


def test_study_that_becomes_ready_has_its_report_queued_after_commit(
    analysed_study, phantom, report_task_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        study = analysed_study(lesion_analysis(phantom))
        assert report_task_calls == []  # nothing before the commit
    assert report_task_calls == [([study.pk], "default")]


def test_reading_queues_its_report_and_a_disagreeing_one_opens_a_case(
    ready_study, radiologist, report_task_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        review = diagnosis_services.review_submit(
            study=ready_study, reviewer=radiologist, final_label="normal"
        )
        assert FeedbackCase.objects.get(study=ready_study).review == review
        assert report_task_calls == []
    assert report_task_calls == [([ready_study.pk], "default")]


def test_agreeing_reading_opens_no_case(ready_study, radiologist):
    diagnosis_services.review_submit(
        study=ready_study,
        reviewer=radiologist,
        final_label="stroke",
        stroke_type="hemorrhagic",
    )
    assert not FeedbackCase.objects.filter(study=ready_study).exists()
