"""Create or update the PostgreSQL login role the web server and workers use.

Run by the role that owns the tables (the one that runs `migrate`), after every
`migrate`. The role may read and write the portal's tables, but may only add to and
read the audit trail and the field history: no UPDATE or DELETE there, no TRUNCATE,
TRIGGER or REFERENCES anywhere, and it owns nothing, so it can neither lift the
append-only trigger nor drop it. Safe to run again: it resets the role's privileges
to exactly these."""

import os
import re

from auditlog.models import LogEntry
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from psycopg import sql

from accounts.models import AuditEntry

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
APPEND_ONLY_TABLES = (AuditEntry._meta.db_table, LogEntry._meta.db_table)
READ_ONLY_TABLES = ("django_migrations",)  # only `migrate`, as the owner, writes it


class Command(BaseCommand):
    help = (
        "Create or update the database role of the web server and workers: read and "
        "write the portal's tables, only append to the audit trail."
    )

    def add_arguments(self, parser):
        parser.add_argument("--role", default="stroke_app")
        parser.add_argument(
            "--password-env",
            default="APP_DB_PASSWORD",
            help="The environment variable holding the role's password.",
        )

    def handle(self, *args, role: str, password_env: str, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                "db_app_role is for PostgreSQL; SQLite has no roles (the hash chain "
                "is its only protection, see README)."
            )
        if not _ROLE_NAME.match(role):
            raise CommandError(f"{role!r} is not a plain lower-case role name.")
        password = os.environ.get(password_env, "")
        if not password:
            raise CommandError(f"Set {password_env} to the role's password.")
        with transaction.atomic(), connection.cursor() as cursor:
            schema, database = _check(cursor, role)
            _ensure_login(role, password)
            for statement in _grants(role=role, schema=schema, database=database):
                cursor.execute(statement.as_string(connection.connection))
        self.stdout.write(
            f"Role {role}: reads and writes the tables in schema {schema}, only "
            f"appends to {' and '.join(APPEND_ONLY_TABLES)}."
        )


def _check(cursor, role: str) -> tuple[str, str]:
    """The schema and database to grant on; refuses a role whose privileges would be
    moot."""
    cursor.execute("SELECT current_user, current_schema(), current_database()")
    owner, schema, database = cursor.fetchone()
    if role == owner:
        raise CommandError(f"{role} runs this command: it owns the tables.")
    cursor.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
        [schema, list(APPEND_ONLY_TABLES)],
    )
    if cursor.fetchone()[0] != len(APPEND_ONLY_TABLES):
        raise CommandError("Run `manage.py migrate` first.")
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
    existing = cursor.fetchone()
    if existing and existing[0]:
        raise CommandError(f"{role} is a superuser: no privilege would hold it.")
    if existing:
        cursor.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s "
            "AND pg_has_role(%s, tableowner, 'MEMBER')",
            [schema, role],
        )
        owners = [row[0] for row in cursor.fetchall()]
        if owners:
            raise CommandError(
                f"{role} owns tables or acts as their owner ({', '.join(owners)})."
            )
    return schema, database


def _ensure_login(role: str, password: str) -> None:
    # Sent SCRAM-hashed, so that the password stays out of the server's logs.
    pgconn = connection.connection.pgconn
    verifier = pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    ).decode()
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        # Only a superuser may name the superuser, replication and RLS attributes
        # of an existing role (_check has refused a superuser).
        statement = (
            "ALTER ROLE {} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD {}"
            if cursor.fetchone()
            else "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            "NOREPLICATION NOBYPASSRLS PASSWORD {}"
        )
        cursor.execute(
            sql.SQL(statement).format(sql.Identifier(role), sql.Literal(verifier))
        )


def _grants(*, role: str, schema: str, database: str) -> list[sql.Composed]:
    names = {
        "role": sql.Identifier(role),
        "schema": sql.Identifier(schema),
        "database": sql.Identifier(database),
        "append_only": sql.SQL(", ").join(map(sql.Identifier, APPEND_ONLY_TABLES)),
        "read_only": sql.SQL(", ").join(map(sql.Identifier, READ_ONLY_TABLES)),
    }
    statements = [
        "GRANT CONNECT ON DATABASE {database} TO {role}",
        "GRANT USAGE ON SCHEMA {schema} TO {role}",
        # From a clean slate, so that a second run also takes back what it no
        # longer grants.
        "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
        "TO {role}",
        "REVOKE UPDATE, DELETE ON {append_only} FROM {role}",
        "REVOKE INSERT, UPDATE, DELETE ON {read_only} FROM {role}",
        # nextval() only: no setval().
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        # Tables of later migrations, when the same role migrates.
        "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        "GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    ]
    return [sql.SQL(statement).format(**names) for statement in statements]
