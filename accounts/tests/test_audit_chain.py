"""The audit trail is a hash chain: `manage.py audit_verify` says it is intact, or
names the first entry that was changed, or that follows removed entries."""

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor

from accounts.audit import GENESIS, audit_record
from accounts.models import AuditEntry

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL's concurrent writers"
)


def verify(*args) -> str:
    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def tamper(sql: str, params=()) -> None:
    """What the owning role or a superuser can still do: lift the trigger, write."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Fire the inserts' deferred foreign-key checks: ALTER TABLE needs that.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE accounts_auditentry DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE accounts_auditentry ENABLE TRIGGER USER")


@pytest.fixture
def trail(admin, clinician, rf):
    request = rf.get("/studies/3/", REMOTE_ADDR="2001:0db8:0000::0001")
    request.user = clinician
    return [
        audit_record(action="user.view", actor=admin, obj=clinician),
        audit_record(action="study.view", request=request, detail={"volume": 1e16}),
        audit_record(
            action="auth.login_failed",
            actor_username="nobody",
            outcome="failure",
            detail={"slices": [0.25, 2.0, -0.0], "nested": {"b": 1, "a": (1, 2)}},
        ),
        audit_record(action="report.download", actor=clinician, object_id=9),
    ]


def test_audit_record_chains_each_entry_to_the_previous_one(trail):
    assert trail[0].prev_hash == GENESIS
    assert [e.prev_hash for e in trail[1:]] == [e.entry_hash for e in trail[:-1]]
    stored = AuditEntry.objects.get(pk=trail[1].pk)
    assert (stored.prev_hash, stored.entry_hash) == (
        trail[1].prev_hash,
        trail[1].entry_hash,
    )


def test_audit_verify_says_an_intact_chain_is_intact(trail):
    last = trail[-1]
    assert verify().startswith(
        f"4 entries, chain intact; last entry {last.pk}:{last.entry_hash}"
    )
    assert "chain intact" in verify("--checkpoint", f"{last.pk}:{last.entry_hash}")


def test_audit_verify_on_an_empty_trail(db):
    assert verify().strip() == "0 entries, chain intact"


def test_audit_verify_names_an_entry_whose_detail_was_changed(trail):
    tamper(
        "UPDATE accounts_auditentry SET detail = %s WHERE id = %s",
        ['{"volume": 2}', trail[1].pk],
    )
    with pytest.raises(CommandError, match=f"entry {trail[1].pk}: its fields do not"):
        verify()


def test_audit_verify_names_an_entry_whose_actor_was_changed(trail, clinician):
    tamper(
        "UPDATE accounts_auditentry SET actor_id = %s, actor_username = %s "
        "WHERE id = %s",
        [clinician.pk, clinician.username, trail[0].pk],
    )
    with pytest.raises(CommandError, match=f"broken: entry {trail[0].pk}: its fields"):
        verify()


def test_audit_verify_finds_a_rehashed_entry_by_the_next_link(trail):
    """Someone who recomputes the changed entry's own hash breaks the next link."""
    tamper(
        "UPDATE accounts_auditentry SET entry_hash = %s WHERE id = %s",
        ["f" * 64, trail[2].pk],
    )
    with pytest.raises(CommandError, match=f"entry {trail[2].pk}: its fields") as err:
        verify()
    assert "1 more broken links" in str(err.value)  # entry 3's prev_hash


def test_audit_verify_finds_a_deleted_entry_in_the_middle(trail):
    tamper("DELETE FROM accounts_auditentry WHERE id = %s", [trail[1].pk])
    with pytest.raises(
        CommandError,
        match=f"entry {trail[2].pk}: prev_hash does not match the hash of "
        f"entry {trail[0].pk}",
    ):
        verify()


def test_audit_verify_finds_a_deleted_first_entry(trail):
    tamper("DELETE FROM accounts_auditentry WHERE id = %s", [trail[0].pk])
    with pytest.raises(CommandError, match=f"entry {trail[1].pk}: prev_hash .* start"):
        verify()


def test_audit_verify_finds_a_truncated_tail_only_with_a_checkpoint(trail):
    last = trail[-1]
    tamper("DELETE FROM accounts_auditentry WHERE id >= %s", [trail[2].pk])
    assert "2 entries, chain intact" in verify()  # the limit, said in the README
    with pytest.raises(CommandError, match=f"checkpoint entry {last.pk} is missing"):
        verify("--checkpoint", f"{last.pk}:{last.entry_hash}")


def test_audit_verify_refuses_a_malformed_checkpoint(db):
    with pytest.raises(CommandError, match="ID:HASH"):
        verify("--checkpoint", "latest")


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_audit_records_keep_the_chain_intact():
    errors = []
    start = threading.Barrier(8)

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(15):
                audit_record(action="study.view", object_id=f"{n}-{i}")
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert verify().startswith("120 entries, chain intact")


@pytest.mark.django_db(transaction=True)
def test_migration_chains_entries_written_before_it(admin):
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0002_audit_append_only")])
    with connection.cursor() as cursor:
        for action in ("user.view", "auth.login", "user.approve"):
            cursor.execute(
                "INSERT INTO accounts_auditentry (timestamp, actor_id, actor_username,"
                " actor_role, action, object_type, object_id, outcome, ip_address,"
                " user_agent, path, detail) VALUES (%s, %s, %s, 'admin', %s, '', '',"
                " 'success', '10.0.0.1', '', '', '{\"n\": 1.5}')",
                ["2026-01-02T03:04:05.123456+00:00", admin.pk, admin.username, action],
            )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    audit_record(action="user.view", actor=admin)
    assert verify().startswith("4 entries, chain intact")


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite's answer")
def test_db_app_role_says_sqlite_has_no_roles(db, monkeypatch):
    monkeypatch.setenv("APP_DB_PASSWORD", "x")
    with pytest.raises(CommandError, match="SQLite has no roles"):
        call_command("db_app_role")
