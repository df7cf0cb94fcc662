"""Role checks for views and APIs.

Every view the portal serves declares the roles that may open it, through
`role_required`; the URL-walking test fails for a view that does not.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from .models import Role

ALL_ROLES = tuple(Role.values)


def role_required(*roles: str) -> Callable:
    """Allow an active user whose role is one of `roles`; anyone else gets 403.
    Anonymous users are sent to the login page (LoginRequiredMiddleware does so
    already, except for views such as DRF's that opt out of it)."""
    unknown = set(roles) - set(Role.values)
    if not roles or unknown:
        raise ValueError(f"role_required needs known roles, got {roles!r}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (user.is_authenticated and user.is_active and user.role in roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = frozenset(roles)
        return wrapped

    return decorator


admin_required = role_required(Role.ADMIN)
any_role_required = role_required(*ALL_ROLES)


def user_has_role(user, *roles: str) -> bool:
    return bool(
        user and user.is_authenticated and user.is_active and user.role in roles
    )


class HasRole(BasePermission):
    """DRF permission: `permission_classes = [HasRole.of(Role.ADMIN)]`."""

    roles: tuple[str, ...] = ALL_ROLES
    message = "Your role does not give access to this resource."

    @classmethod
    def of(cls, *roles: str) -> type["HasRole"]:
        return type(f"HasRole_{'_'.join(roles)}", (cls,), {"roles": tuple(roles)})

    def has_permission(self, request, view) -> bool:
        return user_has_role(request.user, *self.roles)
