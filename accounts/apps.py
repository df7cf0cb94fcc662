from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and audit trail"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from . import receivers  # noqa: F401
        from .models import User

        # Field-level history of accounts (role, activation, names); secrets stay
        # out. Only the account's own columns: auditlog also lists reverse relations
        # on creation ("reviews: None → diagnosis.Review.None"), which say nothing.
        secret = {"password", "last_login"}
        auditlog.register(
            User,
            include_fields=[
                f.name for f in User._meta.concrete_fields if f.name not in secret
            ],
        )
