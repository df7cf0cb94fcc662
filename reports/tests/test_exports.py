"""Structured exports: the FHIR Bundle validates and says what the PDF says; the DICOM
objects re-read with pydicom sit in the study's own StudyInstanceUID, in new series,
with the right SOP classes."""

import io
import json
import zipfile

import numpy as np
import pydicom
import pytest
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle
from pydicom.uid import EncapsulatedPDFStorage, SecondaryCaptureImageStorage

from reports.models import Report
from reports.selectors import report_path

FHIR_STATUSES = {"registered", "partial", "preliminary", "final", "amended"}


def fhir_of(client, study) -> dict:
    response = client.get(reverse("reports:study-fhir", args=[study.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    return json.loads(response.content)


def resources(bundle: dict, kind: str) -> list[dict]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind
    ]


def dicom_files(client, study) -> dict[str, pydicom.Dataset]:
    response = client.get(reverse("reports:study-dicom", args=[study.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {
            name: pydicom.dcmread(io.BytesIO(archive.read(name)))
            for name in archive.namelist()
        }


def test_fhir_bundle_of_unreviewed_study_validates(ready_study, as_clinician):
    data = fhir_of(as_clinician, ready_study)
    Bundle.model_validate(data)  # raises on a structure FHIR does not allow
    (report,) = resources(data, "DiagnosticReport")
    (observation,) = resources(data, "Observation")
    assert report["status"] == observation["status"] == "preliminary"
    assert "Not yet reviewed by a radiologist" in report["conclusion"]
    # What the AI suspects, not a diagnosis: no conclusion code until a reading.
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "274100004"
    (interpretation,) = observation["interpretation"]
    assert interpretation["coding"][0]["code"] == "suspected"
    assert "not confirmed by a radiologist" in interpretation["text"]
    assert "conclusionCode" not in report
    assert "probability 93% (threshold 40%" in report["conclusion"]
    assert "confidence" not in report["conclusion"].lower()
    components = {c["code"]["text"]: c for c in observation["component"]}
    assert not [text for text in components if "confidence" in text.lower()]
    probability = components["Calibrated probability: suspected stroke"][
        "valueQuantity"
    ]
    assert probability["value"] == pytest.approx(0.93, abs=0.005)
    assert components["Decision threshold"]["valueQuantity"]["value"] == 0.4
    (device,) = resources(data, "Device")
    assert device["deviceName"][0]["name"] == "unit-test model"
    assert device["version"][0]["value"] == "1"
    (patient,) = resources(data, "Patient")
    assert patient["identifier"][0]["value"] == "MRN-0042"
    assert patient["gender"] == "female"
    (imaging,) = resources(data, "ImagingStudy")
    assert (
        imaging["identifier"][0]["value"] == f"urn:oid:{ready_study.study_instance_uid}"
    )
    assert report["presentedForm"][0]["url"].endswith(
        reverse("reports:study-pdf", args=[ready_study.pk])
    )


def test_fhir_bundle_of_reviewed_study_carries_the_reading(
    reviewed_study, as_radiologist
):
    data = fhir_of(as_radiologist, reviewed_study)
    bundle = Bundle.model_validate_json(json.dumps(data))
    assert bundle.type == "collection"
    (report,) = resources(data, "DiagnosticReport")
    assert report["status"] == "final"
    assert report["resultsInterpreter"][0]["display"] == "Rob Reader"
    ai, reading = resources(data, "Observation")
    # Read on this result: the AI's observation is final too, and the report's
    # coded conclusion is the radiologist's.
    assert ai["status"] == reading["status"] == "final"
    assert ai["interpretation"][0]["coding"][0]["code"] == "suspected"
    assert report["conclusionCode"] == [reading["valueCodeableConcept"]]
    assert reading["note"][0]["text"].startswith("Acute right frontal")
    assert reading["derivedFrom"] == [{"reference": f"urn:uuid:{ai['id']}"}]
    assert {"valueBoolean": True}.items() <= reading["component"][0].items()
    # Every reference points at an entry of the bundle; statuses are FHIR codes.
    full_urls = {e["fullUrl"] for e in data["entry"]}
    references = [r["reference"] for r in _references(data)]
    assert references and set(references) <= full_urls
    for resource in (report, ai, reading):
        assert resource["status"] in FHIR_STATUSES


def _references(node):
    if isinstance(node, dict):
        if set(node) >= {"reference"}:
            yield node
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_fhir_export_is_stable_for_an_unchanged_study(ready_study, as_clinician):
    first, second = (
        fhir_of(as_clinician, ready_study),
        fhir_of(as_clinician, ready_study),
    )
    assert [e["fullUrl"] for e in first["entry"]] == [
        e["fullUrl"] for e in second["entry"]
    ]


def test_fhir_on_the_api(ready_study, api_clinician):
    response = api_clinician.get(
        reverse("api:study-report-fhir", args=[ready_study.pk])
    )
    assert response.status_code == 200
    bundle = Bundle.model_validate_json(response.content)
    assert bundle.entry[0].resource.__resource_type__ == "DiagnosticReport"


def test_dicom_export_files_pdf_and_key_images_into_the_study(
    reviewed_study, as_clinician, series_dir
):
    original = pydicom.dcmread(sorted(series_dir.iterdir())[0])
    files = dicom_files(as_clinician, reviewed_study)
    assert sorted(files) == [
        "KEY01.dcm",
        "KEY02.dcm",
        "KEY03.dcm",
        "REPORT.dcm",
        "SR.dcm",
    ]
    # The structured report, in the same study (its content: dicomnode's tests).
    assert files["SR.dcm"].StudyInstanceUID == original.StudyInstanceUID
    assert files["SR.dcm"].PreliminaryFlag == "FINAL"  # read by a radiologist

    pdf = files["REPORT.dcm"]
    assert pdf.SOPClassUID == EncapsulatedPDFStorage
    assert pdf.file_meta.MediaStorageSOPClassUID == EncapsulatedPDFStorage
    assert (
        pdf.Modality == "DOC"
        and pdf.MIMETypeOfEncapsulatedDocument == "application/pdf"
    )
    document = bytes(pdf.EncapsulatedDocument)[: pdf.EncapsulatedDocumentLength]
    report = Report.objects.get(study=reviewed_study)
    assert document == report_path(report).read_bytes()

    keys = [files[f"KEY0{i}.dcm"] for i in (1, 2, 3)]
    for ds in [pdf, *keys]:
        # The same study and patient as the original images, in new series.
        assert ds.StudyInstanceUID == original.StudyInstanceUID
        assert ds.StudyInstanceUID == reviewed_study.study_instance_uid
        assert ds.SeriesInstanceUID != original.SeriesInstanceUID
        assert ds.PatientID == original.PatientID == "MRN-0042"
        assert ds.PatientName == original.PatientName
        assert ds.StudyDate == original.StudyDate
        assert pydicom.uid.UID(ds.SOPInstanceUID).is_valid
    for ds in keys:
        assert ds.SOPClassUID == SecondaryCaptureImageStorage
        assert ds.PhotometricInterpretation == "RGB"
        assert ds.pixel_array.shape == (256, 256, 3)
        assert "Decision support" in ds.ImageComments
        # Burned into the pixels, where a PACS reader looks: AI output, not for
        # diagnosis; the text names no patient, so BurnedInAnnotation stays NO.
        assert "Burned-in banner: AI RESULT - NOT FOR DIAGNOSIS." in ds.ImageComments
        assert ds.BurnedInAnnotation == "NO"
        top = ds.pixel_array[:10].astype(int)
        amber = np.all(np.abs(top - np.array([0xB3, 0x5C, 0x00])) <= 12, axis=-1)
        lettering = top[..., 2] > 120  # white text on amber (which has no blue)
        assert amber.mean() > 0.5 and lettering.sum() > 50
    assert len({ds.SeriesInstanceUID for ds in keys}) == 1
    assert keys[0].SeriesInstanceUID != pdf.SeriesInstanceUID
    assert len({ds.SOPInstanceUID for ds in [pdf, *keys]}) == 4
    # The first key image is the most suspicious slice, with its heatmap.
    assert keys[0].ImageComments.startswith("Slice 6 of 8, with AI heatmap")
    pixels = keys[0].pixel_array.astype(int)
    assert ((pixels.max(axis=-1) - pixels.min(axis=-1)) > 120).any()


def test_dicom_export_is_stable_until_the_state_changes(
    ready_study, as_clinician, radiologist
):
    from diagnosis import services as diagnosis_services

    first = dicom_files(as_clinician, ready_study)
    again = dicom_files(as_clinician, ready_study)
    assert {n: d.SOPInstanceUID for n, d in first.items()} == {
        n: d.SOPInstanceUID for n, d in again.items()
    }
    diagnosis_services.review_submit(
        study=ready_study, reviewer=radiologist, final_label="stroke"
    )
    reviewed = dicom_files(as_clinician, ready_study)
    assert (
        reviewed["REPORT.dcm"].SeriesInstanceUID
        != first["REPORT.dcm"].SeriesInstanceUID
    )


def test_dicom_export_of_study_without_dicom_uid_stays_in_one_study(
    ready_study, as_clinician
):
    """Uploads that were not DICOM have no StudyInstanceUID: the exports get one
    derived from the study, the same on every export, and the study's own fields."""
    from diagnosis.models import Study

    Study.objects.filter(pk=ready_study.pk).update(study_instance_uid="")
    ready_study.refresh_from_db()
    first, again = (
        dicom_files(as_clinician, ready_study),
        dicom_files(as_clinician, ready_study),
    )
    uids = {ds.StudyInstanceUID for ds in [*first.values(), *again.values()]}
    assert len(uids) == 1 and uids.pop().startswith("2.25.")
    assert first["REPORT.dcm"].PatientID == "MRN-0042"
    assert first["REPORT.dcm"].PatientSex == "F"
    assert str(first["REPORT.dcm"].PatientName) == "PHANTOM^MRN-0042"
    data = fhir_of(as_clinician, ready_study)
    assert not resources(data, "ImagingStudy")
    Bundle.model_validate(data)


def test_study_links_snippet_names_every_download(ready_study):
    from django.template.loader import render_to_string

    html = render_to_string(
        "reports/_study_links.html",
        {"study": ready_study, "result": ready_study.current_result},
    )
    for name in ("reports:study-pdf", "reports:study-fhir", "reports:study-dicom"):
        assert reverse(name, args=[ready_study.pk]) in html


def test_key_image_banner_wraps_to_fit_a_narrow_slice():
    from reports.dicom import AI_BANNER, DEMO_BANNER
    from reports.images import with_banner

    text = f"{AI_BANNER} - {DEMO_BANNER}"
    wide = with_banner(np.zeros((256, 270, 3), np.uint8), text)
    narrow = with_banner(np.zeros((256, 128, 3), np.uint8), text)

    def banner_rows(pixels):
        return int(np.any(pixels != 0, axis=(1, 2)).sum())

    # Every word is drawn: a narrow slice gets more lines, not a cut-off banner.
    assert banner_rows(narrow) > banner_rows(wide)
    assert not (narrow[:, -3:, 2] > 120).any()  # no letter runs off the edge
