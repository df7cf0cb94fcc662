"""The PDF report: what it says for a reviewed and an unreviewed study, how it looks
(pages rasterised with pdftoppm and checked), and that it always shows the study's
latest state."""

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image
from pypdf import PdfReader

from diagnosis import services as diagnosis_services
from diagnosis.models import StudyStatus
from diagnosis.tasks import study_process_task
from feedback.models import ModelVersion
from reports import services
from reports.models import Report
from reports.tasks import report_render_task

from .conftest import lesion_analysis

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def download(client, study) -> bytes:
    response = client.get(reverse("reports:study-pdf", args=[study.pk]))
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "application/pdf"
    return b"".join(response.streaming_content)


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def rasterise(data: bytes, tmp_path: Path, name: str) -> list[Image.Image]:
    """Pages at 50 dpi; copies land in test-artifacts/ for a person to look at."""
    source = tmp_path / f"{name}.pdf"
    source.write_bytes(data)
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", str(source), str(tmp_path / name)],
        check=True,
        timeout=60,
    )
    pages = sorted(tmp_path.glob(f"{name}-*.png"))
    ARTIFACTS.mkdir(exist_ok=True)
    for page in pages:
        (ARTIFACTS / f"report-{page.name}").write_bytes(page.read_bytes())
    return [Image.open(p).convert("RGB") for p in pages]


def share_of(page: Image.Image, colour: tuple[int, int, int], tol: int = 12) -> float:
    pixels = np.asarray(page, dtype=np.int16)
    close = np.all(np.abs(pixels - np.array(colour)) <= tol, axis=-1)
    return float(close.mean())


RED_BARS = [(0xB3, 0x26, 0x1E), (0x9B, 0x1C, 0x1C)]  # key-slice bars, red headings


def heatmap_share(page: Image.Image) -> float:
    """Share of saturated pixels that are not the report's own reds: the heatmaps."""
    pixels = np.asarray(page, dtype=np.int16)
    saturated = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 100
    ours = np.zeros(saturated.shape, bool)
    for colour in RED_BARS:
        ours |= np.all(np.abs(pixels - np.array(colour)) <= 40, axis=-1)
    return float((saturated & ~ours).mean())


def test_pdf_of_reviewed_study_shows_finding_review_and_notice(
    reviewed_study, as_clinician, settings
):
    settings.INSTITUTION_NAME = "St Example Hospital"
    text = pdf_text(download(as_clinician, reviewed_study))
    report = Report.objects.get(study=reviewed_study)
    for expected in (
        "St Example Hospital",
        "Suspected stroke (hemorrhagic)",
        "AI decision support for stroke",
        "Probability 93.0 % (calibrated)",
        "Decision threshold",
        "40.0 %",
        "unit-test model 1",
        "Reviewed by a radiologist",
        "Rob Reader",
        "Acute right frontal intraparenchymal",
        "MRN-0042",
        "67 years, female",
        "Decision support, not a diagnosis",
        f"Report {report.reference}",
        "Page 1 of 2",
        "Page 2 of 2",
        "Key slices",
        "Slice 6 of 8",
    ):
        assert expected in text, expected
    assert "NOT YET REVIEWED" not in text
    assert "DEMO MODEL" not in text
    # The probability is shown once, with its threshold, not again as "confidence".
    assert "confidence" not in text.lower()


def test_pdf_of_unreviewed_study_says_so_and_names_the_demo_model(
    ready_study, as_clinician
):
    ModelVersion.objects.update(is_demo=True)
    text = pdf_text(download(as_clinician, ready_study))
    assert "NOT YET REVIEWED BY A RADIOLOGIST" in text
    assert "Suspected stroke (hemorrhagic)" in text and "93.0 %" in text
    assert "unit-test model 1" in text and "DEMO MODEL" in text
    assert "Reviewed by a radiologist" not in text


def test_pdf_pages_look_right(ready_study, as_clinician, radiologist, tmp_path):
    unreviewed = rasterise(download(as_clinician, ready_study), tmp_path, "unreviewed")
    diagnosis_services.review_submit(
        study=ready_study, reviewer=radiologist, final_label="stroke"
    )
    reviewed = rasterise(download(as_clinician, ready_study), tmp_path, "reviewed")
    assert len(unreviewed) == len(reviewed) == 2
    for page in unreviewed + reviewed:
        width, height = page.size
        assert abs(height / width - 297 / 210) < 0.01  # A4 portrait
        assert share_of(page, (255, 255, 255)) > 0.5  # paper stays mostly white
    # The banners: amber before the review, green after, on the first page.
    assert share_of(unreviewed[0], (0xFF, 0xF3, 0xE0), tol=6) > 0.01
    assert share_of(reviewed[0], (0xED, 0xF7, 0xEE), tol=6) > 0.01
    assert share_of(reviewed[0], (0xFF, 0xF3, 0xE0), tol=6) < 0.001
    # Key slices: black squares of CT with heatmaps blended in; the probability plot
    # with its red key-slice bars.
    assert sum(share_of(page, (0, 0, 0), tol=8) for page in reviewed) > 0.08
    assert sum(heatmap_share(page) for page in reviewed) > 0.0003
    assert max(share_of(page, RED_BARS[0], tol=20) for page in reviewed) > 0.01


def test_pdftotext_reads_the_report(reviewed_study, as_clinician, tmp_path):
    source = tmp_path / "report.pdf"
    source.write_bytes(download(as_clinician, reviewed_study))
    text = subprocess.run(
        ["pdftotext", "-layout", str(source), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "Suspected stroke (hemorrhagic)" in text
    assert "Rob Reader" in text and "Decision support, not a diagnosis" in text


def test_report_is_kept_per_state_and_follows_the_review(
    ready_study, as_clinician, radiologist
):
    first = pdf_text(download(as_clinician, ready_study))
    again = pdf_text(download(as_clinician, ready_study))
    assert first == again and Report.objects.count() == 1
    diagnosis_services.review_submit(
        study=ready_study,
        reviewer=radiologist,
        final_label="normal",
        impression="Calcification, not blood.",
    )
    corrected = pdf_text(download(as_clinician, ready_study))
    assert "NOT YET REVIEWED" not in corrected
    assert "Calcification, not blood." in corrected and "corrected" in corrected
    assert Report.objects.count() == 2


def test_report_follows_a_new_ai_result(
    reviewed_study, as_clinician, stub_analysis, phantom, admin
):
    before = pdf_text(download(as_clinician, reviewed_study))
    assert "Suspected stroke" in before
    diagnosis_services.study_reprocess(study=reviewed_study, by=admin)
    stub_analysis.next = lesion_analysis(phantom, label="normal")
    study_process_task.apply(args=[reviewed_study.pk])
    reviewed_study.refresh_from_db()
    after = pdf_text(download(as_clinician, reviewed_study))
    assert "No stroke suspected" in after
    assert "earlier AI analysis" in after  # the review was of the previous result


def test_report_file_lost_from_disk_is_rendered_again(ready_study, as_clinician):
    from reports.selectors import report_path

    download(as_clinician, ready_study)
    report_path(Report.objects.get()).unlink()
    assert b"%PDF" in download(as_clinician, ready_study)[:8]
    assert Report.objects.count() == 1


def test_study_without_result_has_no_report_yet(as_clinician, clinician, ready_study):
    from diagnosis.models import Study

    Study.objects.filter(pk=ready_study.pk).update(status=StudyStatus.PROCESSING)
    response = as_clinician.get(reverse("reports:study-pdf", args=[ready_study.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "diagnosis:study-detail", args=[ready_study.pk]
    )
    api = as_clinician.get(reverse("api:study-report-pdf", args=[ready_study.pk]))
    assert api.status_code == 409
    assert not Report.objects.exists()


def test_enqueue_waits_for_commit_and_task_renders_once(
    ready_study, report_task_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.report_enqueue(study_id=ready_study.pk)
    assert report_task_calls == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert report_task_calls == [([ready_study.pk], "default")]
    first = report_render_task.apply(args=[ready_study.pk]).result
    second = report_render_task.apply(args=[ready_study.pk]).result
    assert first == second == Report.objects.get().reference


def test_task_skips_missing_studies(db):
    assert report_render_task.apply(args=[999999]).result == "nothing to report"


@pytest.mark.parametrize("count", [1, 8, 40, 1500])
def test_probability_plot_draws_every_slice(count):
    from reports.images import probability_plot_svg

    probabilities = [i / max(count - 1, 1) for i in range(count)]
    svg = probability_plot_svg(probabilities, threshold=0.5, highlight=[0])
    assert svg.count('fill="#b3261e"') == 1
    assert svg.count("<rect") == count + 1  # the frame and one bar per slice
    assert "threshold 0.50" in svg


def test_page_header_without_a_patient_name_reads_as_an_id(
    reviewed_study, as_clinician
):
    reviewed_study.patient_name = ""
    reviewed_study.save(update_fields=["patient_name"])
    text = pdf_text(download(as_clinician, reviewed_study))
    assert f"Patient ID MRN-0042 · study {reviewed_study.pk}" in text
    assert "Patient · ID" not in text
    assert "Head CT: AI decision support for stroke" in text
