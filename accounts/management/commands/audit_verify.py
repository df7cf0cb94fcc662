"""Walk the audit trail's hash chain in id order and report the first broken link.

An entry whose fields no longer give its `entry_hash` was changed; an entry whose
`prev_hash` is not the previous entry's hash follows entries that were removed (or
precedes reordered ones). Entries removed from the end leave no broken link: pass a
checkpoint printed by an earlier run, kept outside the database, to catch that."""

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import GENESIS, HASHED_FIELDS, entry_hash
from accounts.models import AuditEntry


def _checkpoint(value: str) -> tuple[int, str]:
    entry_id, _, expected = value.partition(":")
    if not entry_id.isdigit() or len(expected) != 64:
        raise CommandError("A checkpoint looks like ID:HASH, as audit_verify prints.")
    return int(entry_id), expected


class Command(BaseCommand):
    help = "Check the audit trail's hash chain; exit 1 at the first broken link."

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            type=_checkpoint,
            help="ID:HASH from an earlier run: that entry must still be there, "
            "unchanged (catches entries removed from the end).",
        )

    def handle(self, *args, checkpoint=None, **options):
        rows = AuditEntry.objects.order_by("id").values(
            "id", "entry_hash", *HASHED_FIELDS
        )
        count, broken, previous = 0, [], {"id": None, "entry_hash": GENESIS}
        for row in rows.iterator(chunk_size=2000):
            count += 1
            problem = _problem(row, previous)
            if problem:
                broken.append(problem)
            previous = row
        if checkpoint:
            problem = _checkpoint_problem(*checkpoint)
            if problem:
                broken.insert(0, problem)
        if broken:
            more = (
                f" ({len(broken) - 1} more broken links after it)"
                if len(broken) > 1
                else ""
            )
            raise CommandError(f"Audit chain broken: {broken[0]}{more}.")
        last = (
            f"; last entry {previous['id']}:{previous['entry_hash']} (keep this "
            "outside the database and pass it as --checkpoint later)"
            if count
            else ""
        )
        self.stdout.write(f"{count} entries, chain intact{last}")


def _problem(row: dict, previous: dict) -> str:
    if row["prev_hash"] != previous["entry_hash"]:
        after = f"entry {previous['id']}" if previous["id"] else "the start"
        return (
            f"entry {row['id']}: prev_hash does not match the hash of {after} "
            "(entries before it were removed or reordered)"
        )
    if entry_hash(row) != row["entry_hash"]:
        return f"entry {row['id']}: its fields do not match its hash (it was changed)"
    return ""


def _checkpoint_problem(entry_id: int, expected: str) -> str:
    actual = (
        AuditEntry.objects.filter(pk=entry_id)
        .values_list("entry_hash", flat=True)
        .first()
    )
    if actual is None:
        return (
            f"checkpoint entry {entry_id} is missing "
            "(the trail was truncated or rewritten)"
        )
    if actual != expected:
        return f"checkpoint entry {entry_id} has another hash (the chain was rewritten)"
    return ""
