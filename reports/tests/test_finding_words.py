"""Every export words the AI finding as the model's card does: a hemorrhage model's
call is an intracranial hemorrhage with its volume, its negative call says what it
does not exclude, its key images show the lesion outline; a demo model's results
carry the demo mark; a study the model declined shows the reason, never a
probability. Each through its download, on a study processed by the real task."""

import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle
from PIL import Image

from diagnosis import ml_adapter
from diagnosis.findings import DEMO, OUTSIDE_SCOPE
from diagnosis.selectors import ai_explanation
from feedback.models import ModelVersion
from reports.fhir import UCUM

from .conftest import lesion_analysis
from .test_exports import dicom_files, fhir_of, resources
from .test_pdf import ARTIFACTS, download, pdf_text

HEMORRHAGE_SEGMENTING = {
    "task": "binary",
    "extra": {"finding": "hemorrhage", "explanation": "segmentation"},
}
DECLINED = "no head or brain was found in the study"
PERCENT = re.compile(r"\d+(\.\d+)? ?%")

BANNER_ROWS = 16  # the burned-in 'AI result' banner of a 256-px key image


@pytest.fixture
def card(active_model):
    """Give the active model a card (and the demo flag) before a study is analysed."""

    def use(card: dict, *, demo: bool = False) -> None:
        ModelVersion.objects.filter(pk=active_model.pk).update(card=card, is_demo=demo)

    return use


@pytest.fixture
def bleed_study(card, analysed_study, phantom):
    """A hemorrhage model's call on the phantom's bleed: outlined on the slice with
    most blood only, 12.4 mL."""
    card(HEMORRHAGE_SEGMENTING)
    return analysed_study(
        lesion_analysis(phantom, stroke_type="", volume_ml=12.4, mapped=1)
    )


@pytest.fixture
def declined_study(analysed_study):
    return analysed_study(ml_adapter.OutsideModelScope(DECLINED))


def words_of(data: bytes) -> str:
    """The PDF's text with line breaks and runs of spaces as single spaces."""
    return " ".join(pdf_text(data).split())


def pages_at_60_dpi(data: bytes, tmp_path: Path, name: str) -> list[Image.Image]:
    """Pages as pdftoppm draws them; copies land in test-artifacts/ to look at."""
    source = tmp_path / f"{name}.pdf"
    source.write_bytes(data)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", str(source), str(tmp_path / name)],
        check=True,
        timeout=60,
    )
    pages = sorted(tmp_path.glob(f"{name}-*.png"))
    ARTIFACTS.mkdir(exist_ok=True)
    for page in pages:
        (ARTIFACTS / f"findings-{page.name}").write_bytes(page.read_bytes())
    return [Image.open(p).convert("RGB") for p in pages]


def keep_pixels(ds, name: str) -> None:
    """A key image's pixels in test-artifacts/, as a PACS would show them."""
    ARTIFACTS.mkdir(exist_ok=True)
    Image.fromarray(ds.pixel_array).save(ARTIFACTS / f"findings-{name}.png")


def yellow(pixels: np.ndarray) -> np.ndarray:
    """Where the lesion outline's yellow shows (after JPEG and rasterising)."""
    rgb = pixels.astype(int)
    return (rgb[..., 0] > 200) & (rgb[..., 1] > 170) & (rgb[..., 2] < 90)


def blue(pixels: np.ndarray) -> np.ndarray:
    """Where a jet heatmap's blue shows: what an outline drawing never has."""
    rgb = pixels.astype(int)
    return (rgb[..., 2] > rgb[..., 0] + 60) & (rgb[..., 2] > rgb[..., 1] + 60)


# The PDF


def test_pdf_names_a_bleed_with_its_volume_and_draws_its_outline(
    bleed_study, as_clinician, tmp_path
):
    data = download(as_clinician, bleed_study)
    text = words_of(data)
    assert "Suspected intracranial hemorrhage · 12 mL" in text
    assert "Suspected stroke" not in text
    assert "suspected intracranial hemorrhage at or above" in text
    assert "Lesion volume 12 mL (AI estimate)" in text
    caption = ai_explanation(result=bleed_study.current_result).caption
    figure = "Slice 6 of 8 · AI probability 93.0 % · left: CT (brain window)"
    assert f"{figure}, right: {caption}" in text
    # The other key slices have no outline: said so, not shown twice as if mapped.
    assert text.count("no map for this slice") == 2
    pages = pages_at_60_dpi(data, tmp_path, "bleed")
    drawn = sum(int(yellow(np.asarray(page)).sum()) for page in pages)
    assert drawn > 20  # the outline, a few pixels wide at 60 dpi
    assert sum(int(blue(np.asarray(page)).sum()) for page in pages) == 0


def test_pdf_of_a_negative_bleed_model_says_what_it_does_not_exclude(
    card, analysed_study, phantom, as_clinician
):
    card(HEMORRHAGE_SEGMENTING)
    study = analysed_study(lesion_analysis(phantom, label="normal", mapped=0))
    text = words_of(download(as_clinician, study))
    caveat = "this does not exclude an ischemic stroke"
    assert f"No hemorrhage suspected \u2014 {caveat}" in text
    assert "No stroke" not in text


def test_pdf_of_a_demo_model_carries_the_demo_mark(
    card, analysed_study, phantom, as_clinician, tmp_path
):
    card({}, demo=True)
    data = download(as_clinician, analysed_study(lesion_analysis(phantom)))
    text = words_of(data)
    assert "DEMO MODEL \u2014 not for clinical use" in text
    assert " ".join(DEMO.explanation.split()) in text
    # Its banner on the first page, in a brown no other report prints.
    first = np.asarray(pages_at_60_dpi(data, tmp_path, "demo")[0], dtype=int)
    brown = np.all(np.abs(first - np.array([0x7A, 0x3E, 0x00])) <= 30, axis=-1)
    assert brown.mean() > 0.0003


def test_pdf_of_a_study_outside_the_model_says_why_without_a_probability(
    declined_study, as_clinician, tmp_path
):
    assert declined_study.current_result is None  # the task kept no AI result
    data = download(as_clinician, declined_study)
    text = words_of(data)
    assert f"{OUTSIDE_SCOPE.label}: {DECLINED}" in text
    assert " ".join(OUTSIDE_SCOPE.explanation.split()) in text
    assert PERCENT.search(text) is None, PERCENT.search(text)
    for absent in ("Calibrated confidence", "Decision threshold", "AI probability"):
        assert absent not in text
    assert "Suspected" not in text and "No stroke suspected" not in text
    assert "The model did not read this study" in text
    pages_at_60_dpi(data, tmp_path, "declined")


def test_study_page_offers_the_reports_of_a_study_outside_the_model(
    declined_study, as_clinician
):
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[declined_study.pk]))
    html = page.content.decode()
    for name in ("reports:study-pdf", "reports:study-fhir", "reports:study-dicom"):
        assert reverse(name, args=[declined_study.pk]) in html, name


# FHIR


def _ai_observation(data: dict) -> dict:
    return resources(data, "Observation")[0]


def test_fhir_codes_a_bleed_as_intracranial_hemorrhage_with_its_volume(
    bleed_study, as_clinician
):
    data = fhir_of(as_clinician, bleed_study)
    Bundle.model_validate(data)
    observation = _ai_observation(data)
    value = observation["valueCodeableConcept"]
    assert value["coding"] == [
        {
            "system": "http://snomed.info/sct",
            "code": "1386000",
            "display": "Intracranial hemorrhage",
        }
    ]
    assert value["text"] == "Suspected intracranial hemorrhage · 12 mL"
    (report,) = resources(data, "DiagnosticReport")
    assert "conclusionCode" not in report  # not read yet: suspected, not diagnosed
    assert observation["interpretation"][0]["coding"][0]["code"] == "suspected"
    assert observation["code"]["coding"][0]["code"] == "ai-hemorrhage-finding"
    assert "intracranial hemorrhage" in report["code"]["text"]
    assert "stroke" not in report["code"]["text"].lower()
    assert "suspected intracranial hemorrhage · 12 mL" in report["conclusion"]
    components = {c["code"]["text"]: c for c in observation["component"]}
    assert components["Lesion volume (AI estimate)"]["valueQuantity"] == {
        "value": 12.4,
        "unit": "mL",
        "system": UCUM,
        "code": "mL",
    }
    assert "Calibrated probability: suspected intracranial hemorrhage" in components
    assert "230690007" not in json.dumps(data)  # never "Cerebrovascular accident"


def test_fhir_of_a_negative_bleed_model_does_not_say_no_abnormality(
    card, analysed_study, phantom, as_clinician
):
    card(HEMORRHAGE_SEGMENTING)
    study = analysed_study(lesion_analysis(phantom, label="normal", mapped=0))
    data = fhir_of(as_clinician, study)
    value = _ai_observation(data)["valueCodeableConcept"]
    assert value["text"] == (
        "No hemorrhage suspected \u2014 this does not exclude an ischemic stroke"
    )
    assert "281900007" not in json.dumps(data)  # "No abnormality detected"
    components = {c["code"]["text"] for c in _ai_observation(data)["component"]}
    assert "Lesion volume (AI estimate)" not in components  # none was measured


def test_fhir_of_a_negative_stroke_model_is_not_suspected_not_no_abnormality(
    analysed_study, phantom, as_clinician
):
    study = analysed_study(lesion_analysis(phantom, label="normal", mapped=0))
    data = fhir_of(as_clinician, study)
    observation = _ai_observation(data)
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == (
        "no-stroke-suspected"
    )
    assert observation["interpretation"][0]["coding"][0]["code"] == "not-suspected"
    assert "281900007" not in json.dumps(data)  # "No abnormality detected"
    (report,) = resources(data, "DiagnosticReport")
    assert "conclusionCode" not in report


def test_fhir_of_a_demo_model_says_demo_on_the_device_and_the_finding(
    card, analysed_study, phantom, as_clinician
):
    card({}, demo=True)
    data = fhir_of(as_clinician, analysed_study(lesion_analysis(phantom)))
    Bundle.model_validate(data)
    (device,) = resources(data, "Device")
    assert device["type"]["text"].endswith("(demo)")
    assert device["note"] == [{"text": DEMO.explanation}]
    observation = _ai_observation(data)
    assert observation["device"]["display"] == "unit-test model 1 (demo)"
    assert {"valueBoolean": True}.items() <= observation["extension"][0].items()
    assert observation["note"] == [{"text": DEMO.explanation}]
    (report,) = resources(data, "DiagnosticReport")
    assert DEMO.explanation in report["conclusion"]


def test_fhir_of_a_study_outside_the_model_has_the_reason_and_no_probability(
    declined_study, as_clinician
):
    data = fhir_of(as_clinician, declined_study)
    Bundle.model_validate(data)
    observation = _ai_observation(data)
    assert "valueCodeableConcept" not in observation
    assert "component" not in observation
    assert observation["dataAbsentReason"]["text"] == (
        f"{OUTSIDE_SCOPE.label}: {DECLINED}"
    )
    (report,) = resources(data, "DiagnosticReport")
    assert OUTSIDE_SCOPE.label in report["conclusion"]
    assert "conclusionCode" not in report
    assert "valueQuantity" not in json.dumps(data)
    assert PERCENT.search(report["conclusion"]) is None
    assert not resources(data, "Device")  # no model gave a result


# DICOM


def test_dicom_key_images_name_the_bleed_and_carry_its_outline(
    bleed_study, as_clinician
):
    files = dicom_files(as_clinician, bleed_study)
    keys = [files[f"KEY0{i}.dcm"] for i in (1, 2, 3)]
    assert (
        keys[0].SeriesDescription == "AI lesion outline key slices (decision support)"
    )
    outlined, *unmapped = keys
    keep_pixels(outlined, "dicom-outlined")
    assert outlined.ImageComments.startswith("Slice 6 of 8, with AI lesion outline")
    assert "AI finding: Suspected intracranial hemorrhage · 12 mL." in (
        outlined.ImageComments
    )
    assert yellow(outlined.pixel_array).sum() > 50
    assert blue(outlined.pixel_array).sum() == 0
    for ds in unmapped:
        assert "no map for this slice" in ds.ImageComments
        pixels = ds.pixel_array[BANNER_ROWS:].astype(int)
        assert (pixels.max(axis=-1) == pixels.min(axis=-1)).all()  # plain grey CT


def test_dicom_of_a_demo_model_says_demo_in_series_comments_and_pixels(
    card, analysed_study, phantom, as_clinician
):
    card({}, demo=True)
    files = dicom_files(as_clinician, analysed_study(lesion_analysis(phantom)))
    assert files["REPORT.dcm"].SeriesDescription.startswith("DEMO MODEL: ")
    key = files["KEY01.dcm"]
    keep_pixels(key, "dicom-demo")
    assert key.SeriesDescription.startswith("DEMO MODEL: ")
    assert DEMO.explanation in key.ImageComments
    # The banner burned across the top, where a PACS reader looks.
    top = key.pixel_array[:8].astype(int)
    amber = np.all(np.abs(top - np.array([0xB3, 0x5C, 0x00])) <= 12, axis=-1)
    assert amber.mean() > 0.5


def test_dicom_of_a_study_outside_the_model_has_the_report_and_no_key_images(
    declined_study, as_clinician
):
    files = dicom_files(as_clinician, declined_study)
    assert sorted(files) == ["REPORT.dcm"]
    report = files["REPORT.dcm"]
    document = bytes(report.EncapsulatedDocument)[: report.EncapsulatedDocumentLength]
    assert f"{OUTSIDE_SCOPE.label}: {DECLINED}" in words_of(document)


def test_key_image_with_an_empty_overlay_is_not_shown_as_a_map():
    from reports.images import key_slice_images

    grey, clear = np.full((64, 64), 90, np.uint8), io.BytesIO()
    Image.new("RGBA", (64, 64), (255, 221, 0, 0)).save(clear, format="PNG")
    ct, overlay = key_slice_images(grey, clear.getvalue(), outline=True)
    assert ct.shape == (256, 256, 3) and overlay is None


def test_key_slices_of_a_segmenting_model_are_its_most_probable_outlined_slices():
    from reports.images import key_slice_indices

    probabilities = [0.1, 0.68, 0.2, 0.91, 0.9, 0.92, 0.3]
    chosen = key_slice_indices(
        suspicious=[5], with_heatmap=[1, 3, 4, 5], probabilities=probabilities, most=3
    )
    # slice 1 (0.68) is outlined too, but the report shows the 0.91 and 0.90 ones
    assert chosen == [5, 3, 4]


def test_pdf_of_a_declined_study_read_by_a_radiologist_corrects_no_ai_finding(
    declined_study, radiologist, as_clinician
):
    """A reading of a study the model did not read confirms or corrects nothing."""
    from diagnosis import services as study_services

    study_services.review_submit(
        study=declined_study, reviewer=radiologist, final_label="normal"
    )
    text = words_of(download(as_clinician, declined_study))
    assert "AI finding none (the model did not read this study)" in text
    assert "corrected" not in text
