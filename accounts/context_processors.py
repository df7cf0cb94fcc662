from django.conf import settings

from .navigation import nav_items_for


def navigation(request):
    user = getattr(request, "user", None)
    return {
        "nav_items": nav_items_for(user) if user is not None else [],
        "portal_name": settings.PORTAL_NAME,
        "institution_name": settings.INSTITUTION_NAME,
        "session_idle_minutes": settings.SESSION_IDLE_MINUTES,
    }
