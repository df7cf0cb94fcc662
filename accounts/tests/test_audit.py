"""The audit trail: recorded by a service, browsed and exported by admins, never
changed or deleted."""

import csv
import io

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from accounts.audit import audit_record
from accounts.models import AuditEntry


def export(client, **params) -> list[dict]:
    response = client.get(reverse("accounts:audit-export"), params)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_audit_record_keeps_who_what_and_where(rf, radiologist):
    request = rf.get("/studies/7/", HTTP_USER_AGENT="Firefox", REMOTE_ADDR="10.0.0.9")
    request.user = radiologist
    entry = audit_record(
        action="study.view", request=request, object_type="diagnosis.study", object_id=7
    )
    assert (entry.actor, entry.actor_role, entry.ip_address, entry.user_agent) == (
        radiologist,
        "radiologist",
        "10.0.0.9",
        "Firefox",
    )
    assert (entry.object_type, entry.object_id, entry.path) == (
        "diagnosis.study",
        "7",
        "/studies/7/",
    )


def test_audit_record_refuses_a_malformed_action(db):
    with pytest.raises(ValueError, match="must look like"):
        audit_record(action="Viewed Study")


def test_entries_cannot_be_changed_or_deleted_through_the_orm(db, admin):
    entry = audit_record(action="user.view", actor=admin, obj=admin)
    entry.action = "user.nothing"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="x.y")
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "user.view"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL trigger only")
def test_database_refuses_raw_updates_and_deletes(db, admin):
    entry = audit_record(action="user.view", actor=admin, obj=admin)
    for sql in (
        "UPDATE accounts_auditentry SET action = 'x.y' WHERE id = %s",
        "DELETE FROM accounts_auditentry WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry.pk])
    assert AuditEntry.objects.filter(pk=entry.pk, action="user.view").exists()


def test_admin_filters_the_trail(as_admin, radiologist, clinician):
    audit_record(
        action="study.view",
        actor=radiologist,
        object_type="diagnosis.study",
        object_id="11",
    )
    audit_record(
        action="report.download",
        actor=clinician,
        object_type="reports.report",
        object_id="12",
    )
    body = as_admin.get(
        reverse("accounts:audit-list"), {"actor": clinician.username}
    ).content.decode()
    assert "report.download" in body and "study.view" not in body
    body = as_admin.get(
        reverse("accounts:audit-list"), {"action": "study"}
    ).content.decode()
    assert "study.view" in body and "report.download" not in body


def test_invalid_filter_shows_an_error_not_everything(as_admin, clinician):
    audit_record(action="study.view", actor=clinician)
    response = as_admin.get(reverse("accounts:audit-list"), {"date_from": "yesterday"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "not valid" in body
    assert "study.view" not in body


def test_browsing_the_trail_is_itself_audited(as_admin, admin):
    as_admin.get(reverse("accounts:audit-list"))
    assert AuditEntry.objects.filter(action="audit.view", actor=admin).exists()


def test_csv_export_holds_the_filtered_entries(as_admin, radiologist, clinician):
    audit_record(
        action="study.view",
        actor=radiologist,
        object_id="21",
        object_type="diagnosis.study",
        detail={"slices": 30},
    )
    audit_record(
        action="study.view",
        actor=clinician,
        object_id="22",
        object_type="diagnosis.study",
    )
    rows = export(as_admin, actor=radiologist.username)
    assert [(r["actor_username"], r["object_id"]) for r in rows] == [
        (radiologist.username, "21")
    ]
    assert rows[0]["detail"] == '{"slices": 30}'
    assert AuditEntry.objects.filter(action="audit.export").exists()


def test_csv_export_defuses_spreadsheet_formulas(client, as_admin):
    client.post(
        reverse("accounts:login"),
        {"username": '=HYPERLINK("http://evil")', "password": "x"},
    )
    rows = export(as_admin, action="auth.login_failed")
    assert rows[0]["actor_username"].startswith("'=")


def test_non_admins_cannot_read_or_export_the_trail(as_radiologist, as_clinician):
    for client in (as_radiologist, as_clinician):
        assert client.get(reverse("accounts:audit-list")).status_code == 403
        assert client.get(reverse("accounts:audit-export")).status_code == 403
