"""What the study page shows a reader must not lead or mislead them: the form starts
empty (never the AI's answer, never another reader's), the reading's agreement is
with the result on the page, and times say what they count from."""

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from diagnosis.models import Study
from diagnosis.tasks import study_process_task

from .conftest import fake_analysis, uploads_of


@pytest.fixture
def ready(as_clinician, series_dir, monkeypatch, active_model, stub_analysis):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
    )
    study = Study.objects.get()
    stub_analysis.next = fake_analysis(label="stroke", probability=0.91)
    assert study_process_task.apply(args=[study.pk]).result == "done"
    return study


def page_of(client, study) -> str:
    response = client.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert response.status_code == 200
    return response.content.decode()


def checked_finding(html: str) -> list[str]:
    """The final-finding radio buttons that are pre-selected."""
    form = html.split('data-testid="review-form"')[1].split("</form>")[0]
    return [
        tag
        for tag in form.split("<input")[1:]
        if 'name="final_label"' in tag and "checked" in tag.split(">")[0]
    ]


def read(client, study, label, impression=""):
    response = client.post(
        reverse("diagnosis:study-review", args=[study.pk]),
        {"final_label": label, "impression": impression},
    )
    assert response.status_code == 302


def test_the_review_form_does_not_hold_the_ai_answer(ready, as_radiologist):
    html = page_of(as_radiologist, ready)
    assert 'data-testid="ai-finding"' in html  # the AI's call is beside the form
    assert checked_finding(html) == []


def test_a_second_reader_does_not_get_the_first_readers_reading(ready, as_radiologist):
    read(as_radiologist, ready, "normal", impression="Old infarct only, no bleed.")
    second = UserFactory(username="rita-radiologist", role="radiologist")
    from django.test import Client

    client = Client()
    client.force_login(second)
    html = page_of(client, ready)
    assert checked_finding(html) == []
    form = html.split('data-testid="review-form"')[1].split("</form>")[0]
    assert "Old infarct only" not in form
    assert 'data-testid="other-reading"' in html  # told a reading exists, below
    assert "Old infarct only" in html.split('data-testid="current-review"')[1]
    # The reader's own reading comes back to them to amend.
    mine = page_of(as_radiologist, ready)
    assert (
        len(checked_finding(mine)) == 1 and 'value="normal"' in checked_finding(mine)[0]
    )
    assert 'data-testid="other-reading"' not in mine


def test_the_ai_panel_shows_probability_and_threshold_not_a_confidence(
    ready, as_radiologist
):
    html = page_of(as_radiologist, ready)
    panel = html.split('data-testid="ai-panel"')[1].split("</section>")[0]
    assert 'data-testid="ai-probability"' in panel
    assert 'data-testid="ai-threshold"' in panel
    assert "Confidence" not in panel
    assert "8 slices" in html


def test_after_a_rerun_the_reading_is_compared_with_the_new_result(
    ready, as_radiologist, as_admin, stub_analysis
):
    read(as_radiologist, ready, "normal")
    assert "differs from the AI" in page_of(as_radiologist, ready)
    as_admin.post(reverse("diagnosis:study-reprocess", args=[ready.pk]))
    stub_analysis.next = fake_analysis(label="normal", probability=0.1)
    assert study_process_task.apply(args=[ready.pk]).result == "done"
    html = page_of(as_radiologist, ready)
    agreement = html.split('data-testid="reading-agreement">')[1].split("</span>")[0]
    assert agreement == "read on an earlier AI analysis; agrees with the current one"
    assert "differs from the AI" not in html
    # The time of the new analysis counts from when it was queued again.
    time_words = html.split('data-testid="analysis-time">')[1].split("</span>")[0]
    assert "after it was queued again" in time_words
    assert "after upload" not in time_words


def test_a_first_analysis_is_timed_from_upload(ready, as_radiologist):
    html = page_of(as_radiologist, ready)
    time_words = html.split('data-testid="analysis-time">')[1].split("</span>")[0]
    assert time_words.endswith("s after upload)")


def row_of(client, study) -> str:
    html = client.get(reverse("diagnosis:study-list")).content.decode()
    return html.split(f'data-study="{study.pk}"')[1].split("</tr>")[0]


def test_once_read_the_list_leads_with_the_reading(ready, as_radiologist, as_clinician):
    before = row_of(as_clinician, ready)
    assert 'data-ai-label="stroke"' in before and "data-reading" not in before
    read(as_radiologist, ready, "normal")
    row = row_of(as_clinician, ready)
    finding = row.split("<td>")[3]
    # The reading comes first; the AI's red call is marked as the AI's, below it.
    assert finding.index('data-reading="normal"') < finding.index("data-ai-label")
    assert "Read: No stroke" in finding
    assert 'data-testid="ai-secondary">AI: ' in finding
    # The waiting clock stopped when the study was read.
    assert "read after 0 min" in row
    api = as_clinician.get(reverse("api:study-list")).json()["results"][0]
    assert (api["reviewed"], api["reading_label"]) == (True, "normal")
    assert api["read_at"] is not None


def png_of(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 40).save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_set_aside_at_upload_are_said_on_the_study_page(
    as_clinician, monkeypatch
):
    """The upload page's script follows the JSON answer to the study page, so the
    set-aside files must be said there, not only in a flash message."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    sizes = [(256, 256), (300, 300), (320, 240), (512, 512)]
    files = [
        SimpleUploadedFile(f"slice{i}.png", png_of(*size), content_type="image/png")
        for i, size in enumerate(sizes)
    ]
    answer = as_clinician.post(
        reverse("diagnosis:study-upload"),
        {"files": files},
        HTTP_ACCEPT="application/json",
    )
    assert answer.status_code == 201
    assert len(answer.json()["rejected"]) == 3
    html = as_clinician.get(answer.json()["url"]).content.decode()
    notice = html.split('data-testid="set-aside"')[1].split("</div>")[0]
    assert "<details open>" in notice
    assert "3 files set aside at upload" in notice
    assert "1 slice, and not analysed" in notice
    assert notice.count("differs from the") == 3


def test_the_badge_shows_the_probability_the_page_shows(
    as_clinician, as_radiologist, series_dir, monkeypatch, active_model, stub_analysis
):
    """A suspected stroke at a 47% probability (threshold 40%) reads 47% on its
    badge, in the list and on the page, not its 53% 'confidence'."""
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
    )
    study = Study.objects.get()
    stub_analysis.next = fake_analysis(label="stroke", probability=0.47)
    assert study_process_task.apply(args=[study.pk]).result == "done"
    page = page_of(as_radiologist, study)
    badge = page.split('data-testid="ai-finding">')[1].split("</p>")[0]
    assert "· 47% · borderline" in badge and "53%" not in badge
    assert 'data-testid="ai-probability">47.0%<' in page
    assert "· 47% · borderline" in row_of(as_radiologist, study)
    api = as_radiologist.get(reverse("api:study-list")).json()["results"][0]
    assert api["ai_probability"] == pytest.approx(0.47)


def test_only_an_admin_is_offered_to_reprocess_a_finished_study(
    ready, as_admin, as_radiologist
):
    button = "Reprocess with the active model"
    assert button in page_of(as_admin, ready)
    assert button not in page_of(as_radiologist, ready)
    Study.objects.filter(pk=ready.pk).update(status="processing")
    assert button not in page_of(as_admin, ready)


@pytest.fixture
def bleed_model(active_model):
    """The active model as a hemorrhage model: its card declares the finding."""
    active_model.card = {"extra": {"finding": "hemorrhage"}}
    active_model.save()
    return active_model


@pytest.fixture
def bleed_called(bleed_model, ready):
    """A study the hemorrhage model called a bleed (probability 0.91)."""
    return ready


def agreement_of(client, study) -> str:
    html = page_of(client, study)
    return html.split('data-testid="reading-agreement">')[1].split("</span>")[0]


def test_an_ischemic_stroke_read_on_a_called_bleed_differs_from_the_ai(
    bleed_called, as_radiologist
):
    """The reading's label is the AI's ("stroke"), but the hemorrhage model called a
    bleed and the reader saw an infarct: that is not agreement."""
    html = page_of(as_radiologist, bleed_called)
    assert 'data-testid="reading-hint"' in html
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[bleed_called.pk]),
        {"final_label": "stroke", "stroke_type": "ischemic"},
    )
    assert agreement_of(as_radiologist, bleed_called) == "differs from the AI"
    assert bleed_called.current_review.agrees_with_ai is False


def test_agreeing_with_a_called_bleed_saves_a_hemorrhagic_stroke(
    bleed_called, as_radiologist
):
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[bleed_called.pk]), {"agree": "1"}
    )
    review = bleed_called.current_review
    assert (review.final_label, review.stroke_type) == ("stroke", "hemorrhagic")
    assert review.agrees_with_ai is True
    assert agreement_of(as_radiologist, bleed_called) == "agrees with the AI"


def test_an_ischemic_stroke_agrees_with_no_bleed_suspected(
    bleed_called, as_radiologist, as_admin, stub_analysis
):
    as_admin.post(reverse("diagnosis:study-reprocess", args=[bleed_called.pk]))
    stub_analysis.next = fake_analysis(label="normal", probability=0.05)
    assert study_process_task.apply(args=[bleed_called.pk]).result == "done"
    read_as = {"final_label": "stroke", "stroke_type": "ischemic"}
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[bleed_called.pk]), read_as
    )
    assert agreement_of(as_radiologist, bleed_called) == "agrees with the AI"
