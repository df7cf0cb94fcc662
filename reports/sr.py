"""The AI result as a DICOM Structured Report: a TID 1500 Measurement Report
(Comprehensive 3D SR, built with highdicom) in the study's own StudyInstanceUID,
beside the Encapsulated PDF and the key images of reports.dicom.

One measurement group holds what the AI suspects: the finding as a qualitative
evaluation ("Intracranial hemorrhage": suspected / not suspected), its probability
and the model's threshold, the bleed volume in mL when the model measures one, and
the model's name and version as the algorithm. After a review a second group holds
the radiologist's reading (present / absent) and their impression. Every SR says in
words that the AI part is an AI result, not a diagnosis.

UIDs derive from the report's id, as reports.dicom's do: the same state of a study
gives the same SR, a new reading a new one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import highdicom as hd
from django.conf import settings
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from diagnosis.findings import FINDING_NAMES, HEMORRHAGE
from diagnosis.models import Label

from .dicom import _uid, study_uid
from .fhir import FINDING_CODES, INTRACRANIAL_HEMORRHAGE
from .selectors import ReportContent

SR_SERIES_NUMBER = 903
#: Said in every SR, beside the AI's group: a reader of the PACS sees no banner.
NOT_A_DIAGNOSIS = "AI result \u2014 not a diagnosis (decision support only)."

SCT = "SCT"
# Codes of the portal's own where no standard one says it: DICOM allows private
# coding schemes whose designator starts with "99".
PORTAL_SCHEME = "99STRKPRT"
CT_OF_HEAD = hd.sr.CodedConcept("303653007", SCT, "Computed tomography of head")
SUSPECTED = hd.sr.CodedConcept("415684004", SCT, "Suspected")
# An AI that calls nothing excludes nothing: "not suspected", never "absent".
NOT_SUSPECTED = hd.sr.CodedConcept(
    "not-suspected", PORTAL_SCHEME, "Not suspected by the AI"
)
PRESENT = hd.sr.CodedConcept("52101004", SCT, "Present")
ABSENT = hd.sr.CodedConcept("2667000", SCT, "Absent")
PROBABILITY = hd.sr.CodedConcept("122157", "DCM", "Probability")
THRESHOLD = hd.sr.CodedConcept("threshold", PORTAL_SCHEME, "Decision threshold")
VOLUME = hd.sr.CodedConcept("118565006", SCT, "Volume")
MILLILITER = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
COMMENT = hd.sr.CodedConcept("121106", "DCM", "Comment")
IMPRESSION = hd.sr.CodedConcept("121073", "DCM", "Impression")


def finding_code(finding: str, *, label: str, stroke_type: str) -> hd.sr.CodedConcept:
    """What the AI looks for (or the reader found), coded as the FHIR export codes
    it: a hemorrhage model's finding is an intracranial hemorrhage, a stroke
    model's a stroke (of its type when one is named)."""
    if finding == HEMORRHAGE:
        code, meaning = INTRACRANIAL_HEMORRHAGE
    else:
        key = (Label.STROKE, stroke_type if label == Label.STROKE else "")
        code, meaning = FINDING_CODES.get(key, FINDING_CODES[(Label.STROKE, "")])
    return hd.sr.CodedConcept(code, SCT, meaning)


def structured_report(
    content: ReportContent,
    *,
    report_uid: uuid.UUID,
    created_at: datetime,
    evidence: list[Dataset],
) -> hd.sr.Comprehensive3DSR:
    """The SR of one state of a study (its AI result and, once read, its reading).

    `evidence`: instances of the same study the SR refers to (its key images, its
    PDF report, or an uploaded slice's header); highdicom takes the patient and
    study attributes from the first. Raises ValueError when the model declined the
    study: without an AI result there is nothing to measure."""
    if content.result is None or content.words is None:
        raise ValueError("A structured report needs an AI result; the model had none.")
    if not evidence or evidence[0].StudyInstanceUID != study_uid(content.study):
        raise ValueError("The SR's evidence must be instances of the study itself.")
    groups = [_ai_group(content, report_uid)]
    if content.review is not None:
        groups.append(_reading_group(content, report_uid))
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(content),
        procedure_reported=CT_OF_HEAD,
        imaging_measurements=groups,
    )
    _add_words(report, content)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=_uid(report_uid, "sr-series"),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=_uid(report_uid, "sr"),
        instance_number=1,
        manufacturer=settings.PORTAL_NAME,
        institution_name=settings.INSTITUTION_NAME or None,
        is_complete=True,
        # Final once a radiologist has read it; the AI alone is preliminary.
        is_final=content.review is not None,
        series_description=_series_description(content),
        content_date=created_at.date(),
        content_time=created_at.time().replace(microsecond=0),
    )
    sr.SpecificCharacterSet = "ISO_IR 192"  # the words carry dashes, names accents
    return sr


def _series_description(content: ReportContent) -> str:
    demo = "DEMO MODEL: " if content.is_demo else ""
    return f"{demo}AI SR: {FINDING_NAMES[content.words.finding]} (not a diagnosis)"[:64]


def _observation_context(content: ReportContent) -> hd.sr.ObservationContext:
    model = content.result.model_version
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=_uid("model", model.sha256 or model.pk),
        name=f"{model.name} {model.version}"[:64],
        manufacturer_name=settings.PORTAL_NAME,
        model_name=model.name[:64],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _ai_group(
    content: ReportContent, report_uid
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    result = content.result
    model = result.model_version
    algorithm = hd.sr.AlgorithmIdentification(
        name=model.name[:64], version=str(model.version)[:64]
    )
    finding = finding_code(
        content.words.finding, label=result.label, stroke_type=result.stroke_type
    )
    measurements = [
        hd.sr.Measurement(
            name=PROBABILITY,
            value=round(result.probability, 4),
            unit=NO_UNITS,
            algorithm_id=algorithm,
        ),
        hd.sr.Measurement(
            name=THRESHOLD,
            value=round(result.threshold, 4),
            unit=NO_UNITS,
            algorithm_id=algorithm,
        ),
    ]
    if result.volume_ml is not None:
        measurements.append(
            hd.sr.Measurement(
                name=VOLUME,
                value=round(result.volume_ml, 2),
                unit=MILLILITER,
                algorithm_id=algorithm,
            )
        )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_uid(report_uid, "ai-finding"), identifier="AI finding"
        ),
        finding_type=finding,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=finding,
                value=SUSPECTED if content.words.positive else NOT_SUSPECTED,
            )
        ],
    )


def _reading_group(content: ReportContent, report_uid):
    review = content.review
    finding = finding_code(
        content.words.finding, label=Label.STROKE, stroke_type=review.stroke_type
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_uid(report_uid, "reading"), identifier="Radiologist reading"
        ),
        finding_type=finding,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=finding,
                value=PRESENT if review.final_label == Label.STROKE else ABSENT,
            )
        ],
    )


def _add_words(report: hd.sr.MeasurementReport, content: ReportContent) -> None:
    """Append the words a reader needs to the report's root container: that the AI
    part is not a diagnosis, and the radiologist's reading in their words."""
    root = report[0]
    root.ContentSequence.append(
        _text(COMMENT, f"{NOT_A_DIAGNOSIS} {_ai_words(content)}")
    )
    review = content.review
    if review is not None:
        reader = review.reviewer.get_full_name() or review.reviewer.username
        words = f"Radiologist's reading ({reader}): {review.get_final_label_display()}"
        if review.stroke_type:
            words += f" ({review.get_stroke_type_display().lower()})"
        if review.impression:
            words += f". {review.impression}"
        root.ContentSequence.append(_text(IMPRESSION, words))


def _ai_words(content: ReportContent) -> str:
    result = content.result
    demo = (
        " Demo model: results on real scans are not meaningful."
        if content.is_demo
        else ""
    )
    return (
        f"AI finding: {content.finding_text}; probability {result.probability:.2f} "
        f"(threshold {result.threshold:.2f}); model {result.model_version}.{demo}"
    )


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
