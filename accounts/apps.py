from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and audit trail"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from . import receivers  # noqa: F401
        from .models import User

        # Field-level history of accounts (role, activation, names); secrets stay out.
        auditlog.register(User, exclude_fields=["password", "last_login"])
