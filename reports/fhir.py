"""FHIR export: a collection Bundle holding a DiagnosticReport, an Observation for the
AI finding, one for the radiologist's review when there is one, and the Patient,
Device (the model) and ImagingStudy they refer to.

Built with fhir.resources' R4B models: R4B is R4 with the same DiagnosticReport and
Observation structures, and fhir.resources 8 no longer ships plain R4. Ids are derived
from the study's state, so exporting an unchanged study twice gives the same ids.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from diagnosis.findings import DEMO, FINDING_NAMES, HEMORRHAGE, finding_name
from diagnosis.models import Label, StrokeType

from . import selectors
from .selectors import ReportContent

MEDIA_TYPE = "application/fhir+json"
PORTAL_CODES = "urn:stroke-portal:codes"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
_NAMESPACE = uuid.UUID("6f1d3c52-4b0e-4c47-8f57-2a6f0b0c7e11")

# An AI call is what the model suspects, never a diagnosis: its Observation carries
# one of these interpretations, and only a radiologist's reading is a conclusion.
SUSPECTED = ("suspected", "Suspected by the AI, not confirmed by a radiologist")
NOT_SUSPECTED = ("not-suspected", "Not suspected by the AI; this excludes nothing")
FINDING_CODES = {
    (Label.NORMAL, ""): ("281900007", "No abnormality detected"),
    (Label.STROKE, ""): ("230690007", "Cerebrovascular accident"),
    (Label.STROKE, StrokeType.ISCHEMIC): ("422504002", "Ischemic stroke"),
    (Label.STROKE, StrokeType.HEMORRHAGIC): ("274100004", "Cerebral hemorrhage"),
}
INTRACRANIAL_HEMORRHAGE = ("1386000", "Intracranial hemorrhage")
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DEMO_EXTENSION = "urn:stroke-portal:extension:demo-model"
GENDERS = {"F": "female", "M": "male", "O": "other"}


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def _ref(resource: dict) -> dict:
    return {"reference": f"urn:uuid:{resource['id']}"}


def _when(value: datetime) -> str:
    return timezone.localtime(value).isoformat(timespec="seconds")


def _finding(label: str, stroke_type: str, text: str) -> dict:
    code, display = FINDING_CODES.get(
        (label, stroke_type or ""), FINDING_CODES[(label, "")]
    )
    return {
        "coding": [{"system": SNOMED, "code": code, "display": display}],
        "text": text,
    }


def _finding_text(label: str, stroke_type: str) -> str:
    if label != Label.STROKE:
        return "No stroke"
    return f"Stroke ({stroke_type})" if stroke_type else "Stroke"


def _ai_finding(content: ReportContent) -> dict:
    """What the AI suspects, in its card's words. A hemorrhage model's positive call
    is an intracranial hemorrhage, not a stroke. A negative call excludes nothing a
    radiologist would rule out, so it gets no SNOMED code that would say "no
    abnormality" but the portal's own "not suspected"."""
    result, words, text = content.result, content.words, content.finding_text
    if not words.positive:
        code = f"no-{'hemorrhage' if words.finding == HEMORRHAGE else 'stroke'}"
        return {
            "coding": [
                {"system": PORTAL_CODES, "code": f"{code}-suspected", "display": text}
            ],
            "text": text,
        }
    if words.finding != HEMORRHAGE:
        return _finding(result.label, result.stroke_type, text)
    code, display = INTRACRANIAL_HEMORRHAGE
    return {
        "coding": [{"system": SNOMED, "code": code, "display": display}],
        "text": text,
    }


def _interpretation(content: ReportContent) -> list[dict]:
    code, display = SUSPECTED if content.words.positive else NOT_SUSPECTED
    return [
        {
            "coding": [{"system": PORTAL_CODES, "code": code, "display": display}],
            "text": display,
        }
    ]


def _task_name(content: ReportContent) -> str:
    return finding_name(content.words)


def _volume(volume_ml: float) -> dict:
    return {
        "code": {
            "coding": [{"system": PORTAL_CODES, "code": "lesion-volume"}],
            "text": "Lesion volume (AI estimate)",
        },
        "valueQuantity": _quantity(volume_ml, 1, unit="mL", code="mL"),
    }


def _quantity(value, digits: int, *, unit: str, code: str) -> dict:
    """A FHIR Quantity; a non-finite stored value (JSON has none) is left out."""
    quantity: dict[str, Any] = {"unit": unit, "system": UCUM, "code": code}
    if value is not None and math.isfinite(float(value)):
        quantity = {"value": round(float(value), digits), **quantity}
    return quantity


def _fraction(code: str, text: str, value: float) -> dict:
    return {
        "code": {"coding": [{"system": PORTAL_CODES, "code": code}], "text": text},
        "valueQuantity": _quantity(value, 4, unit="probability", code="1"),
    }


def _patient(study) -> dict:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": _uuid("patient", study.pk),
    }
    if study.patient_id:
        patient["identifier"] = [{"type": {"text": "MRN"}, "value": study.patient_id}]
    if study.patient_name:
        patient["name"] = [{"text": study.patient_name}]
    patient["gender"] = GENDERS.get(study.patient_sex, "unknown")
    return patient


def _device(model, task: str) -> dict:
    device = {
        "resourceType": "Device",
        "id": _uuid("model", model.pk),
        "deviceName": [{"name": model.name, "type": "model-name"}],
        "version": [{"value": model.version}],
        "type": {
            "text": f"AI model that looks for {task} (decision support)"
            + (" (demo)" if model.is_demo else "")
        },
    }
    if model.is_demo:
        device["note"] = [{"text": DEMO.explanation}]
    return device


def _imaging_study(study, patient: dict) -> dict | None:
    if not study.study_instance_uid:
        return None
    return {
        "resourceType": "ImagingStudy",
        "id": _uuid("imaging-study", study.pk),
        "identifier": [
            {"system": "urn:dicom:uid", "value": f"urn:oid:{study.study_instance_uid}"}
        ],
        "status": "available",
        "subject": _ref(patient),
        "numberOfInstances": study.slice_count,
        "description": study.study_description or None,
    }


def _ai_when(content: ReportContent) -> datetime:
    """When the AI spoke: its result, or the study's end for one it declined."""
    if content.result is not None:
        return content.result.created_at
    return content.study.ready_at or content.study.created_at


def _ai_observation(content: ReportContent, patient, device, imaging) -> dict:
    """The AI finding, interpreted as suspected (or not), preliminary until a
    radiologist has read the study on this result; for a study the model declined
    (outside what it was made for) no value and no probability, only the reason."""
    result, study, review = content.result, content.study, content.review
    when = _ai_when(content)
    read = (
        review is not None and result is not None and review.ai_result_id == result.pk
    )
    finding_code = (
        "ai-hemorrhage-finding"
        if _task_name(content) == FINDING_NAMES[HEMORRHAGE]
        else "ai-stroke-finding"
    )
    observation = {
        "resourceType": "Observation",
        "id": _uuid("ai-result", result.pk)
        if result
        else _uuid("outside-scope", study.pk),
        "status": "final" if read else "preliminary",
        "category": [_imaging_category()],
        "code": {
            "coding": [{"system": PORTAL_CODES, "code": finding_code}],
            "text": f"AI looking for {_task_name(content)} (decision support)",
        },
        "subject": _ref(patient),
        "effectiveDateTime": _when(when),
        "issued": _when(when),
        "method": {"text": "Deep learning on head imaging; decision support only"},
    }
    if result is None:
        observation["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT, "code": "not-applicable"}],
            "text": content.outside_scope,
        }
    else:
        observation["device"] = {**_ref(device), "display": str(result.model_version)}
        observation["valueCodeableConcept"] = _ai_finding(content)
        observation["interpretation"] = _interpretation(content)
        observation["component"] = _ai_components(content)
    if content.is_demo:
        observation["extension"] = [{"url": DEMO_EXTENSION, "valueBoolean": True}]
        observation["note"] = [{"text": DEMO.explanation}]
    if imaging:
        observation["derivedFrom"] = [_ref(imaging)]
    return observation


def _ai_components(content: ReportContent) -> list[dict]:
    result = content.result
    positive = content.positive_title
    probability_code = (
        "hemorrhage-probability"
        if content.words.finding == HEMORRHAGE
        else "stroke-probability"
    )
    components = [
        _fraction(
            probability_code,
            f"Calibrated probability: {positive[:1].lower()}{positive[1:]}",
            result.probability,
        ),
        # The probability at or above which the model calls the finding suspected.
        _fraction("threshold", "Decision threshold", result.threshold),
    ]
    if content.volume_ml is not None:
        components.append(_volume(content.volume_ml))
    for name, value in sorted((result.type_probabilities or {}).items()):
        components.append(_fraction(f"type-{name}", f"Probability: {name}", value))
    return components


def _review_observation(review, patient, ai_observation, *, on_this_result) -> dict:
    text = _finding_text(review.final_label, review.stroke_type)
    observation = {
        "resourceType": "Observation",
        "id": _uuid("review", review.pk),
        "status": "final",
        "category": [_imaging_category()],
        "code": {
            "coding": [{"system": PORTAL_CODES, "code": "radiologist-reading"}],
            "text": "Radiologist's reading",
        },
        "subject": _ref(patient),
        "effectiveDateTime": _when(review.created_at),
        "issued": _when(review.created_at),
        "performer": [{"display": _person(review.reviewer)}],
        "valueCodeableConcept": _finding(review.final_label, review.stroke_type, text),
        "component": [
            {
                "code": {
                    "coding": [{"system": PORTAL_CODES, "code": "agrees-with-ai"}],
                    "text": "Agrees with the AI finding",
                },
                "valueBoolean": review.agrees_with_ai,
            }
        ],
    }
    if on_this_result:
        observation["derivedFrom"] = [_ref(ai_observation)]
    if review.impression:
        observation["note"] = [{"text": review.impression}]
    return observation


def _imaging_category() -> dict:
    return {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "imaging",
                "display": "Imaging",
            }
        ]
    }


def _person(user) -> str:
    return user.get_full_name() or user.username


def _conclusion(content: ReportContent) -> str:
    result, review = content.result, content.review
    if result is None:
        ai = f"AI: {content.outside_scope}. "
    else:
        finding = content.finding_text
        ai = (
            f"AI: {finding[:1].lower()}{finding[1:]}, "
            f"probability {_percent(result.probability)} (threshold "
            f"{_percent(result.threshold)}, {result.model_version}). "
        )
    if content.is_demo:
        ai += f"{DEMO.explanation} "
    if review is None:
        return (
            ai + "Not yet reviewed by a radiologist. Decision support, not a diagnosis."
        )
    reading = _finding_text(review.final_label, review.stroke_type).lower()
    return ai + f"Radiologist ({_person(review.reviewer)}): {reading}."


def _percent(value) -> str:
    if value is None or not math.isfinite(float(value)):
        return "unknown"
    return f"{float(value):.0%}"


def _conclusion_code(content: ReportContent) -> list[dict]:
    """Only a radiologist's reading is coded as the report's conclusion: an
    unreviewed AI call stays an Observation interpreted as suspected."""
    review = content.review
    if review is None:
        return []
    text = _finding_text(review.final_label, review.stroke_type)
    return [_finding(review.final_label, review.stroke_type, text)]


def report_bundle(content: ReportContent, *, pdf_url: str = "") -> Bundle:
    """The study's report as a validated FHIR Bundle (collection)."""
    study, result, review = content.study, content.result, content.review
    patient = _patient(study)
    device = _device(result.model_version, _task_name(content)) if result else None
    imaging = _imaging_study(study, patient)
    ai = _ai_observation(content, patient, device, imaging)
    observations = [ai]
    if review is not None:
        on_this_result = result is not None and review.ai_result_id == result.pk
        observations.append(
            _review_observation(review, patient, ai, on_this_result=on_this_result)
        )
    state = (result.pk if result else 0, review.pk if review else 0)
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": _uuid("report", study.pk, *state),
        "identifier": [
            {"system": PORTAL_CODES, "value": f"study-{study.pk}-{state[0]}-{state[1]}"}
        ],
        "status": "final" if review is not None else "preliminary",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "RAD",
                        "display": "Radiology",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": LOINC,
                    "code": "18748-4",
                    "display": "Diagnostic imaging study",
                }
            ],
            "text": f"Head {study.modality or 'imaging'} with AI decision support for "
            f"{_task_name(content)}",
        },
        "subject": _ref(patient),
        "effectiveDateTime": _when(study.created_at),
        "issued": _when(review.created_at if review else _ai_when(content)),
        "result": [_ref(o) for o in observations],
        "conclusion": _conclusion(content),
        "conclusionCode": _conclusion_code(content) or None,
    }
    if settings.INSTITUTION_NAME:
        report["performer"] = [{"display": settings.INSTITUTION_NAME}]
    if review is not None:
        report["resultsInterpreter"] = [{"display": _person(review.reviewer)}]
    if imaging:
        report["imagingStudy"] = [_ref(imaging)]
    if pdf_url:
        report["presentedForm"] = [
            {"contentType": "application/pdf", "url": pdf_url, "title": "PDF report"}
        ]
    resources = [report, *observations, patient, device, imaging]
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "id": _uuid("bundle", study.pk, *state),
            "type": "collection",
            "timestamp": _when(timezone.now()),
            "entry": [
                {"fullUrl": f"urn:uuid:{r['id']}", "resource": _drop_none(r)}
                for r in resources
                if r is not None
            ],
        }
    )


def _drop_none(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if v is not None}


def study_fhir_bundle(*, study, pdf_url: str = "") -> Bundle:
    """The FHIR Bundle for the study's current state; raises ReportUnavailable before
    an AI result exists."""
    result, review = selectors.report_state(study=study)
    content = selectors.report_content(
        study=study, result=result, review=review, images_too=False
    )
    return report_bundle(content, pdf_url=pdf_url)
