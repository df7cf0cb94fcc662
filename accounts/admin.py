from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .models import AuditEntry, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "get_full_name", "email", "role", "is_active")
    list_filter = ("role", "is_active")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (
            "Portal",
            {
                "fields": (
                    "role",
                    "requested_role",
                    "department",
                    "must_change_password",
                    "approved_at",
                    "approved_by",
                )
            },
        ),
    )
    readonly_fields = ("approved_at", "approved_by")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only everywhere in the portal."""

    list_display = (
        "timestamp",
        "actor_username",
        "action",
        "object_type",
        "object_id",
        "outcome",
        "ip_address",
    )
    list_filter = ("outcome", "action")
    search_fields = ("actor_username", "action", "object_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
