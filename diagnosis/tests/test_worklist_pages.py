"""The worklist's pages, rows, filter form and totals, on more studies than fit on a
page. Studies are written straight into the table (the pipeline is tested in
test_worklist.py and test_processing.py)."""

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from diagnosis.models import Study, StudyStatus, worklist_bucket


def add_studies(uploader, n, *, first=0, **fields) -> list[Study]:
    """`n` ready, unreviewed studies; even numbers are suspected strokes, and a
    higher number means a surer finding."""
    studies = []
    for i in range(first, first + n):
        stroke = i % 2 == 0
        row = {
            "uploaded_by": uploader,
            "status": StudyStatus.READY,
            "reviewed": False,
            "content_hash": f"{i:064d}",
            "source_kind": "dicom",
            "units": "HU",
            "modality": "CT",
            "slice_count": 30,
            "patient_id": f"MRN{i:04d}",
            "ai_label": "stroke" if stroke else "normal",
            "ai_confidence": 0.9,
            "ai_probability": 0.9,
            "priority": (1 if stroke else 0) + i / 1000,
            **fields,
        }
        row["bucket"] = worklist_bucket(status=row["status"], reviewed=row["reviewed"])
        studies.append(Study(**row))
    return Study.objects.bulk_create(studies)


def in_worklist_order(studies) -> list[int]:
    return [s.pk for s in sorted(studies, key=lambda s: (s.bucket, -s.priority))]


def page_rows(client, **params) -> tuple[list[int], str]:
    body = client.get(reverse("diagnosis:study-list"), params).content.decode()
    return [int(pk) for pk in re.findall(r'data-study="(\d+)"', body)], body


def test_worklist_pages_through_the_url_in_worklist_order(clinician, as_radiologist):
    studies = add_studies(clinician, 60)
    ids = []
    for number in (1, 2, 3):
        rows, body = page_rows(as_radiologist, page=number)
        assert f"Page {number} of 3" in body
        ids += rows
    assert ids == in_worklist_order(studies)
    _, middle = page_rows(as_radiologist, page=2)
    assert 'href="?page=1">Previous' in middle and 'href="?page=3">Next' in middle
    assert page_rows(as_radiologist, page=99)[0] == ids[50:]
    assert page_rows(as_radiologist, page="x")[0] == ids[:25]


def test_page_links_and_totals_follow_the_filters(clinician, as_radiologist):
    studies = add_studies(clinician, 60)
    rows, body = page_rows(as_radiologist, ai_label="stroke", page=2)
    strokes = [s for s in studies if s.ai_label == "stroke"]
    assert rows == in_worklist_order(strokes)[25:]
    assert "Page 2 of 2" in body
    assert 'href="?ai_label=stroke&amp;page=1">Previous' in body
    assert "Page 1 of 3" in page_rows(as_radiologist)[1]


def test_page_totals_are_per_scope(clinician, outsider, as_radiologist, as_outsider):
    add_studies(clinician, 30)
    add_studies(outsider, 3, first=100)
    assert "Page 1 of 2" in page_rows(as_radiologist)[1]
    rows, body = page_rows(as_outsider)
    assert len(rows) == 3 and "Page 1 of" not in body


def test_a_new_study_shows_before_the_shared_total_catches_up(
    clinician, as_radiologist
):
    add_studies(clinician, 3)
    page_rows(as_radiologist)  # the total, 3, is now shared for a few seconds
    (urgent,) = add_studies(clinician, 1, first=998)
    rows, _ = page_rows(as_radiologist)
    assert len(rows) == 4 and rows[0] == urgent.pk


def test_worklist_row_shows_the_study_at_a_glance(clinician, as_radiologist):
    (study,) = add_studies(
        clinician,
        1,
        patient_age=67,
        patient_sex="F",
        ai_stroke_type="ischemic",
        status=StudyStatus.PROCESSING,
        progress_done=12,
        progress_total=30,
    )
    Study.objects.filter(pk=study.pk).update(
        created_at=timezone.now() - timedelta(hours=2, minutes=5)
    )
    _, body = page_rows(as_radiologist)
    row = re.search(r'<tr data-study="\d+">.*?</tr>', body, re.S).group(0)
    detail = reverse("diagnosis:study-detail", args=[study.pk])
    assert f'href="{detail}">MRN0000</a>' in row
    assert "67 y · Female" in row
    assert "CT · 30 slices" in row and "dicom · by cleo-clinician" in row
    assert "Suspected stroke (ischemic) · 90%" in row
    assert 'text-bg-info">Processing</span> <span class="small">12/30' in row
    assert "2 h 05 min" in row
    assert "To review" not in row and "—" in row


def test_a_row_without_an_age_starts_with_the_sex(clinician, as_radiologist):
    add_studies(clinician, 1, patient_age=None, patient_sex="M")
    _, body = page_rows(as_radiologist)
    row = re.search(r'<tr data-study="\d+">.*?</tr>', body, re.S).group(0)
    assert '<div class="small text-body-secondary">Male</div>' in row


def test_filter_form_keeps_the_choices_and_marks_what_is_wrong(as_radiologist):
    body = as_radiologist.get(
        reverse("diagnosis:study-list"),
        {
            "status": "ready",
            "reviewed": "no",
            "date_to": "2024-01-02",
            "date_from": "soon",
            "patient_id": "MRN<1",
        },
    ).content.decode()
    assert '<option value="ready" selected>Ready</option>' in body
    assert '<option value="no" selected>Not reviewed</option>' in body
    assert body.count(" selected>") == 2
    assert 'name="date_to" value="2024-01-02"' in body
    assert 'name="patient_id" value="MRN&lt;1"' in body
    invalid = re.findall(r'id="(id_\w+)" aria-invalid="true"', body)
    assert invalid == ["id_date_from"]


def test_every_list_read_is_audited(clinician, radiologist, as_radiologist):
    add_studies(clinician, 30)
    as_radiologist.get(reverse("diagnosis:study-list"), {"page": 2})
    as_radiologist.get(reverse("diagnosis:study-list"), {"partial": 1})
    as_radiologist.get(reverse("api:study-list"))
    entries = AuditEntry.objects.filter(actor=radiologist, action="study.list")
    assert [e.detail for e in entries.order_by("pk")] == [
        {"page": 2, "count": 5},
        {"page": 1, "count": 25},
        {"api": True, "count": 25},
    ]


def test_api_list_pages_rows_and_links(clinician, api_radiologist, api_clinician):
    studies = add_studies(clinician, 30)
    add_studies(clinician, 4, first=200, ai_label="", priority=0, status="queued")
    url = reverse("api:study-list")
    body = api_radiologist.get(url, {"ai_label": "stroke"}).json()
    assert body["count"] == 15 and body["next"] is None
    first = body["results"][0]
    strokes = [s for s in studies if s.ai_label == "stroke"]
    assert first["id"] == in_worklist_order(strokes)[0]
    assert first["url"] == reverse("api:study-detail", args=[first["id"]])
    assert first["ai_label"] == "stroke" and first["reviewed"] is False
    everything = api_radiologist.get(url).json()
    assert everything["count"] == 34 and "page=2" in everything["next"]
    second = api_radiologist.get(everything["next"]).json()
    assert [r["status"] for r in second["results"]][-4:] == ["queued"] * 4
    assert api_radiologist.get(url, {"page": 9}).status_code == 404


def test_api_totals_are_per_scope(clinician, outsider, api_radiologist, api_clinician):
    from rest_framework.test import APIClient

    add_studies(clinician, 30)
    api_outsider = APIClient()
    api_outsider.force_authenticate(outsider)
    url = reverse("api:study-list")
    totals = [c.get(url).json()["count"] for c in (api_radiologist, api_outsider)]
    assert totals == [30, 0]
    assert api_clinician.get(url).json()["count"] == 30
