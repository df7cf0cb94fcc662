"""The web server and workers connect as a role made by `manage.py db_app_role`: it
runs the portal, but cannot erase or alter the audit trail even with SQL."""

import contextlib
import os
import secrets
from io import StringIO

import psycopg
import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError, connection
from django.test import Client
from django.urls import reverse

from accounts.audit import audit_record
from accounts.models import AuditEntry, User
from accounts.tests.factories import PASSWORD, UserFactory
from diagnosis.models import Study

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="database roles are PostgreSQL's"
)
PASSWORD_ENV = "TEST_APP_DB_PASSWORD"


def verify() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


@pytest.fixture
def app_role(transactional_db, monkeypatch):
    """A role of this test only: roles are shared by every database of the cluster."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles "
            "WHERE rolname = current_user"
        )
        if not cursor.fetchone()[0]:
            pytest.skip("the test database's user may not create roles")
    name = f"stroke_app_test_{os.getpid()}_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv(PASSWORD_ENV, password)
    call_command("db_app_role", role=name, password_env=PASSWORD_ENV, stdout=StringIO())
    yield name, password
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{name}"')
        cursor.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def app_sql(app_role):
    """A psycopg connection to the test database as the app role."""
    name, password = app_role
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        dbname=settings["NAME"],
        user=name,
        password=password,
        autocommit=True,
    ) as conn:
        yield conn


@contextlib.contextmanager
def portal_as(role: tuple[str, str]):
    """The portal's own connection as the app role, as in docker-compose."""
    settings = connection.settings_dict
    saved = settings["USER"], settings["PASSWORD"]
    connection.close()
    settings["USER"], settings["PASSWORD"] = role
    try:
        yield
    finally:
        connection.close()
        settings["USER"], settings["PASSWORD"] = saved


@pytest.fixture
def trail(transactional_db):
    """Two audit entries and a change in an account's field history."""
    admin = UserFactory(username="alice-admin", role="admin")
    clinician = UserFactory(username="cleo-clinician")
    editor = UserFactory(username="eddie-editor", role="admin")
    with set_actor(editor):
        clinician.department = "Neurology"  # field history by django-auditlog
        clinician.save()
    audit_record(action="user.view", actor=admin, obj=clinician)
    audit_record(action="study.view", actor=clinician, object_id=4)
    return admin, clinician, editor


ERASURES = {
    "truncate": "TRUNCATE accounts_auditentry",
    "truncate cascade": "TRUNCATE accounts_auditentry CASCADE",
    "disable the trigger": "ALTER TABLE accounts_auditentry "
    "DISABLE TRIGGER accounts_auditentry_no_change",
    "disable all triggers": "ALTER TABLE accounts_auditentry DISABLE TRIGGER ALL",
    "drop the trigger": "DROP TRIGGER accounts_auditentry_no_change "
    "ON accounts_auditentry",
    "replace the trigger function": "CREATE OR REPLACE FUNCTION "
    "accounts_auditentry_append_only() RETURNS trigger AS $$ BEGIN RETURN OLD; END; "
    "$$ LANGUAGE plpgsql",
    "skip triggers for the session": "SET session_replication_role = replica",
    "update": "UPDATE accounts_auditentry SET detail = '{}'",
    "delete": "DELETE FROM accounts_auditentry",
    "drop the table": "DROP TABLE accounts_auditentry",
    "take ownership": "ALTER TABLE accounts_auditentry OWNER TO CURRENT_USER",
    "delete field history": "DELETE FROM auditlog_logentry",
    "update field history": "UPDATE auditlog_logentry SET changes_text = ''",
    "truncate field history": "TRUNCATE auditlog_logentry",
    "rewind a sequence": "SELECT setval(pg_get_serial_sequence("
    "'accounts_auditentry', 'id'), 1)",
    "forge migration state": "DELETE FROM django_migrations",
}


@pytest.mark.parametrize("sql", ERASURES.values(), ids=ERASURES.keys())
def test_app_role_cannot_erase_or_alter_the_trail(trail, app_sql, sql):
    before, history = AuditEntry.objects.count(), LogEntry.objects.count()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_sql.execute(sql)
    assert AuditEntry.objects.count() == before
    assert verify().startswith(f"{before} entries, chain intact")
    assert LogEntry.objects.count() == history
    assert LogEntry.objects.get_for_object(trail[1]).filter(actor=trail[2]).exists()


def test_an_entry_the_app_role_adds_with_sql_is_flagged(trail, app_sql):
    """The role must add entries, so it can add one with SQL too; one that did not
    come through audit_record does not fit the chain."""
    assert app_sql.execute("SELECT count(*) FROM accounts_auditentry").fetchone() == (
        2,
    )
    (forged,) = app_sql.execute(
        "INSERT INTO accounts_auditentry (timestamp, actor_username, actor_role,"
        " action, object_type, object_id, outcome, user_agent, path, detail,"
        " prev_hash, entry_hash) VALUES (now(), 'alice-admin', 'admin', 'user.view',"
        " '', '', 'success', '', '', '{}', '', '') RETURNING id"
    ).fetchone()
    with pytest.raises(CommandError, match=f"entry {forged}: prev_hash"):
        verify()


def test_the_portal_runs_as_the_app_role(trail, app_role, settings):
    """Sign-in, an approval, a study's rows and the chain, all through the portal."""
    admin, clinician, _ = trail
    pending = UserFactory(username="nina-new", is_active=False, approved_at=None)
    with portal_as(app_role):
        client = Client()
        response = client.post(
            reverse("accounts:login"),
            {"username": admin.username, "password": PASSWORD},
        )
        assert response.status_code == 302
        response = client.post(
            reverse("accounts:user-approve", args=[pending.pk]), {"role": "clinician"}
        )
        assert response.status_code == 302
        study = Study.objects.create(
            uploaded_by=clinician,
            content_hash="a" * 64,
            source_kind="dicom",
            units="HU",
        )
        Study.objects.filter(pk=study.pk).update(patient_id="MRN-7")
        study.delete()
        assert verify().startswith("4 entries, chain intact")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == app_role[0]
    actions = AuditEntry.objects.order_by("id").values_list("action", flat=True)
    assert list(actions)[-2:] == ["auth.login", "user.approve"]
    assert User.objects.get(pk=pending.pk).is_active
    assert LogEntry.objects.get_for_object(pending).filter(actor=admin).exists()


def test_app_role_cannot_delete_a_user_named_in_field_history(trail, app_role):
    """django-auditlog would set the history's actor to NULL: refused, so the
    history keeps who changed what (deactivate accounts instead of deleting them)."""
    editor = trail[2]
    refused = pytest.raises(ProgrammingError, match="permission denied for table audit")
    with portal_as(app_role), refused:
        User.objects.filter(pk=editor.pk).delete()
    assert User.objects.filter(pk=editor.pk).exists()


def test_db_app_role_covers_tables_of_later_migrations(app_role, app_sql):
    call_command(
        "db_app_role", role=app_role[0], password_env=PASSWORD_ENV, stdout=StringIO()
    )
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE later_migration (id serial PRIMARY KEY, n int)")
    try:
        app_sql.execute("INSERT INTO later_migration (n) VALUES (1)")
        app_sql.execute("UPDATE later_migration SET n = 2")
        app_sql.execute("DELETE FROM later_migration")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_sql.execute("TRUNCATE later_migration")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE later_migration")


@pytest.mark.parametrize("role", ["postgres", "Robert'); DROP TABLE x; --"])
def test_db_app_role_refuses_the_owner_and_odd_names(db, monkeypatch, role):
    monkeypatch.setenv(PASSWORD_ENV, "irrelevant")
    with pytest.raises(CommandError, match=r"owns the tables|not a plain"):
        call_command("db_app_role", role=role, password_env=PASSWORD_ENV)


def test_db_app_role_needs_a_password(db, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(CommandError, match=f"Set {PASSWORD_ENV}"):
        call_command("db_app_role", role="stroke_app_unused", password_env=PASSWORD_ENV)
