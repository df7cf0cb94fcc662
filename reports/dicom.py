"""DICOM export, filed into the study's own StudyInstanceUID so a PACS shows it beside
the original images: the PDF report as Encapsulated PDF (one series) and the key
slices with the model's map as Secondary Capture images (another series).

Patient and study attributes are copied from an uploaded file of the study when there
is one, so the PACS matches them to the original series exactly; otherwise they come
from the study's fields. UIDs derive from the report's id: exporting the same report
twice gives the same instances, and a new report a new pair of series.
"""

from __future__ import annotations

import io
import logging
import uuid
import zipfile
from datetime import datetime

import highdicom as hd
import numpy as np
import pydicom
from django.conf import settings
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import EncapsulatedPDFStorage

from diagnosis import storage
from diagnosis.findings import DEMO, finding_name

from . import images
from .selectors import ReportContent

logger = logging.getLogger(__name__)

KEY_IMAGE_SERIES_NUMBER = 901
REPORT_SERIES_NUMBER = 902
_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_DIRECTIONS = {0: ("L", "R"), 1: ("P", "A"), 2: ("H", "F")}
#: Burned into every key image, where a PACS reader looks: a Secondary Capture's
#: comments and series description are rarely on screen beside its pixels.
AI_BANNER = "AI RESULT - NOT FOR DIAGNOSIS"
DEMO_BANNER = f"{DEMO.label.upper()} - not for clinical use"


_NAMESPACE = uuid.UUID("0d7c1f0e-93a4-4b8e-a1c5-5e0f3b7d2a61")


def _uid(*parts: object) -> str:
    """A UID under 2.25 (UUID-derived, no registered root needed) that is the same
    every time for the same parts."""
    name = "/".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"


def study_uid(study) -> str:
    """The study's StudyInstanceUID; for uploads that were not DICOM, one derived from
    the study so that every export of it lands in the same study."""
    return study.study_instance_uid or _uid("stroke-portal-study", study.pk)


def reference_header(study) -> Dataset | None:
    """The header of one uploaded DICOM file of this study (pixels not read), or None
    when the study did not come as DICOM files."""
    if not study.study_instance_uid:
        return None
    for item in study.files.all()[:20]:
        path = storage.uploads_root() / item.storage_name
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, pydicom.errors.InvalidDicomError):
            continue  # a zip or an image: look further
        if header.get("StudyInstanceUID") == study.study_instance_uid:
            return header
    return None


def _dicom_name(name: str) -> str:
    """The portal's 'Family, Given' back to DICOM's 'Family^Given'."""
    family, _, given = name.partition(",")
    return f"{family.strip()}^{given.strip()}" if given else name.strip()


def _patient_and_study(content: ReportContent, header: Dataset | None) -> dict:
    study = content.study
    if header is not None:
        values = {key: header.get(key) for key in _COPIED}
        values = {k: (str(v) if v is not None else None) for k, v in values.items()}
    else:
        values = {
            "PatientName": _dicom_name(study.patient_name),
            "PatientID": study.patient_id,
            "PatientSex": study.patient_sex or None,
            "StudyDate": study.study_date.strftime("%Y%m%d")
            if study.study_date
            else None,
        }
    return {
        "patient_name": values.get("PatientName") or None,
        "patient_id": values.get("PatientID") or None,
        "patient_birth_date": values.get("PatientBirthDate") or None,
        "patient_sex": values.get("PatientSex") or None,
        "accession_number": values.get("AccessionNumber") or None,
        "study_id": values.get("StudyID") or None,
        "study_date": values.get("StudyDate") or None,
        "study_time": values.get("StudyTime") or None,
        "referring_physician_name": values.get("ReferringPhysicianName") or None,
    }


def _common(content: ReportContent, header: Dataset | None) -> dict:
    return {
        "study_instance_uid": study_uid(content.study),
        "manufacturer": settings.PORTAL_NAME,
        # UTF-8: the finding's words have a middle dot and a dash, names accents.
        "specific_character_set": "ISO_IR 192",
        **_patient_and_study(content, header),
    }


def _orientation(header: Dataset | None) -> tuple[str, str]:
    """PatientOrientation of the in-plane axes, from the series' direction cosines."""
    cosines = header.get("ImageOrientationPatient") if header is not None else None
    if not cosines or len(cosines) != 6:
        return ("L", "P")  # axial, as head CT is acquired
    letters = []
    for vector in (cosines[:3], cosines[3:]):
        axis = int(np.argmax(np.abs(vector)))
        positive, negative = _DIRECTIONS[axis]
        letters.append(positive if vector[axis] >= 0 else negative)
    return letters[0], letters[1]


def encapsulated_pdf(
    content: ReportContent,
    pdf: bytes,
    *,
    report_uid: uuid.UUID,
    created_at: datetime,
    header: Dataset | None = None,
) -> Dataset:
    """The PDF report as an Encapsulated PDF instance in a new series of the study."""
    when = timezone.localtime(created_at)
    ds = hd.SOPClass(
        series_instance_uid=_uid(report_uid, "report-series"),
        series_number=REPORT_SERIES_NUMBER,
        sop_instance_uid=_uid(report_uid, "report"),
        sop_class_uid=EncapsulatedPDFStorage,
        instance_number=1,
        modality="DOC",
        series_description=(
            f"{_demo_prefix(content)}AI report: {finding_name(content.words)} "
            "(decision support)"
        )[:64],
        institution_name=settings.INSTITUTION_NAME or None,
        software_versions=_model(content)[:64] or None,
        content_date=when.date(),
        content_time=when.time().replace(microsecond=0),
        **_common(content, header),
    )
    ds.ConversionType = "WSD"  # SC Equipment: made by a workstation
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the PDF names the patient
    ds.DocumentTitle = (
        f"{_demo_prefix(content)}AI decision support report: "
        f"{finding_name(content.words)}"
    )
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    # OB values have even length; the trailing pad byte is why the length is stored.
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


def _model(content: ReportContent) -> str:
    return str(content.result.model_version) if content.result else ""


def _demo_prefix(content: ReportContent) -> str:
    return f"{DEMO.label.upper()}: " if content.is_demo else ""


def _finding_comment(content: ReportContent) -> str:
    """The AI finding as the PDF words it, for a key image's comments."""
    demo = f" {DEMO.label}: {DEMO.explanation}" if content.is_demo else ""
    return f"AI finding: {content.finding_text}.{demo}"


def _slice_comment(content: ReportContent, item, layer: str) -> str:
    total = len(content.probabilities)
    drawn = f"with AI {layer}" if item.overlay is not None else "no map for this slice"
    parts = [f"Slice {item.index + 1} of {total}", drawn]
    if item.probability is not None:
        parts.append(f"AI probability {item.probability:.2f}")
    parts.append(_model(content))
    return ", ".join(parts) + "."


def key_image_banner(content: ReportContent) -> str:
    """The words burned across the top of every key image."""
    return f"{AI_BANNER} - {DEMO_BANNER}" if content.is_demo else AI_BANNER


def key_images(
    content: ReportContent,
    *,
    report_uid: uuid.UUID,
    header: Dataset | None = None,
) -> list[Dataset]:
    """The key slices with the model's map (heatmap or lesion outline) burned in, as
    Secondary Capture images in a new series of the study. Slices without a map are
    exported as they are; every one carries a burned-in banner saying it is AI
    output and not for diagnosis (and a demo model's that it is one)."""
    common = _common(content, header)
    series_uid = _uid(report_uid, "key-image-series")
    layer = content.explanation.layer.lower()
    finding = _finding_comment(content)
    out = []
    for number, item in enumerate(content.key_slices, start=1):
        pixels = item.overlay if item.overlay is not None else item.ct
        pixels = images.with_banner(pixels, key_image_banner(content))
        ds = hd.sc.SCImage(
            pixel_array=np.ascontiguousarray(pixels),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            patient_orientation=_orientation(header),
            series_instance_uid=series_uid,
            series_number=KEY_IMAGE_SERIES_NUMBER,
            sop_instance_uid=_uid(report_uid, "key-image", item.index),
            instance_number=number,
            **common,
        )
        ds.SeriesDescription = (
            f"{_demo_prefix(content)}AI {layer} key slices (decision support)"
        )[:64]
        ds.ImageComments = (
            f"{_slice_comment(content, item, layer)} {finding} "
            f"Burned-in banner: {key_image_banner(content)}. "
            "Decision support, not a diagnosis."
        )[:10240]
        # DICOM's BurnedInAnnotation says whether the burned-in text identifies the
        # patient: the banner names none, so it stays NO (de-identification tools
        # rely on it); the banner is declared in ImageComments instead.
        ds.BurnedInAnnotation = "NO"
        out.append(ds)
    return out


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_zip(objects: dict[str, list[Dataset]]) -> bytes:
    """A zip of Part 10 files, ready to send to a PACS: REPORT.dcm, KEY01.dcm… and
    SR.dcm (when there is one), from the objects by kind ("pdf", "sc", "sr") that
    reports.services.report_dicom_objects builds."""
    (document,) = objects["pdf"]
    files = {"REPORT.dcm": document}
    for ds in objects["sc"]:
        files[f"KEY{int(ds.InstanceNumber):02d}.dcm"] = ds
    if objects["sr"]:
        (files["SR.dcm"],) = objects["sr"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, ds in files.items():
            archive.writestr(name, _bytes(ds))
    return buffer.getvalue()
