from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    RADIOLOGIST = "radiologist", "Radiologist"
    CLINICIAN = "clinician", "Clinician"
    ADMIN = "admin", "Administrator"


class Site(models.Model):
    """A hospital or department whose studies a group of clinicians may see: a study
    that arrives over the network belongs to its sending node's site."""

    name = models.CharField(max_length=120, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A portal user. New self-registered accounts stay inactive until an admin
    approves them."""

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CLINICIAN)
    requested_role = models.CharField(
        max_length=20, choices=Role.choices, blank=True, default=""
    )
    department = models.CharField(max_length=120, blank=True, default="")
    # Clinicians see the studies they uploaded and those that arrived from their
    # site's scanners and PACS; radiologists and admins see every study.
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )
    must_change_password = models.BooleanField(default=False)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @property
    def is_admin(self) -> bool:
        return self.is_active and self.role == Role.ADMIN

    @property
    def is_radiologist(self) -> bool:
        return self.is_active and self.role == Role.RADIOLOGIST

    @property
    def is_clinician(self) -> bool:
        return self.is_active and self.role == Role.CLINICIAN

    @property
    def is_pending_approval(self) -> bool:
        return not self.is_active and self.approved_at is None


class AuditOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"


class AuditQuerySet(models.QuerySet):
    """Audit entries are append-only: bulk updates and deletes are refused here, and
    on PostgreSQL a trigger refuses them in the database too."""

    def update(self, **kwargs):
        raise PermissionError("Audit entries cannot be changed.")

    def delete(self):
        raise PermissionError("Audit entries cannot be deleted.")


class AuditEntry(models.Model):
    """Who did what, when, from where, to which object, and with what outcome.

    Entries form a hash chain in id order: `entry_hash` is the sha256 of the entry's
    fields and `prev_hash`, the previous entry's `entry_hash` (see accounts.audit), so
    that an entry changed or removed with SQL shows in `manage.py audit_verify`."""

    # Set by audit_record, which hashes it, rather than by save() afterwards.
    timestamp = models.DateTimeField(
        default=timezone.now, editable=False, db_index=True
    )
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Kept as text too: failed logins name accounts that may not exist.
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    actor_role = models.CharField(max_length=20, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True, db_index=True)
    object_id = models.CharField(max_length=64, blank=True, db_index=True)
    outcome = models.CharField(
        max_length=10, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    path = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    entry_hash = models.CharField(max_length=64, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries cannot be deleted.")
