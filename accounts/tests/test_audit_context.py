"""Services take an AuditContext, not an HTTP request: a view hands over who and from
where, a worker or a command hands over nothing, and the entry says so either way."""

from accounts import services
from accounts.audit import AuditContext
from accounts.models import AuditEntry


def test_the_context_of_a_request_is_what_its_entry_records(rf, admin, clinician):
    request = rf.post(
        "/accounts/users/7/unlock/?next=x",
        REMOTE_ADDR="10.2.3.4",
        HTTP_USER_AGENT="Firefox",
    )
    request.user = admin
    services.user_unlock(user=clinician, by=admin, audit=AuditContext.of(request))
    entry = AuditEntry.objects.get(action="user.unlock")
    assert (entry.actor, entry.ip_address, entry.user_agent, entry.path) == (
        admin,
        "10.2.3.4",
        "Firefox",
        "/accounts/users/7/unlock/?next=x",
    )


def test_work_no_request_started_is_recorded_without_an_address(admin, clinician):
    services.user_unlock(user=clinician, by=admin, audit=AuditContext())
    entry = AuditEntry.objects.get(action="user.unlock")
    assert (entry.actor, entry.ip_address, entry.path) == (None, None, "")
    assert entry.object_id == str(clinician.pk)
