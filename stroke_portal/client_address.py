"""The client's address as the sign-in throttle and the audit trail record it."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; behind TRUSTED_PROXY_COUNT proxies, the address the outermost
    trusted proxy received the connection from.

    Each proxy appends the address it saw to X-Forwarded-For, so that address is the
    count-th entry from the right. Entries further left were written by the client
    itself and prove nothing: taking them would let anyone choose the address that
    is throttled and audited. A request that did not pass through every trusted
    proxy (too few entries) is taken at its REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [
        hop.strip()
        for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if hop.strip()
    ]
    if len(hops) < count:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        return remote
