from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from .audit import Action, audit_record
from .models import AuditOutcome, Role, Site, User
from .services import SELF_SERVICE_ROLES


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "The username or password is not right. Note that both are "
            "case-sensitive. After %(limit)s failed attempts, sign-in is locked "
            "for a while."
        ),
        "pending": (
            "This account is waiting for an administrator's approval. You will "
            "receive an e-mail when it is active."
        ),
        "inactive": (
            "This account has been deactivated. Ask an administrator of the portal "
            "to reactivate it."
        ),
    }

    def get_invalid_login_error(self):
        from django.conf import settings

        return forms.ValidationError(
            self.error_messages["invalid_login"]
            % {"limit": settings.AXES_FAILURE_LIMIT},
            code="invalid_login",
        )

    def confirm_login_allowed(self, user: User) -> None:
        if user.is_active:
            return
        code = "pending" if user.is_pending_approval else "inactive"
        audit_record(
            action=Action.LOGIN_INACTIVE,
            request=self.request,
            actor_username=user.username,
            obj=user,
            outcome=AuditOutcome.DENIED,
            detail={"reason": code},
        )
        raise forms.ValidationError(self.error_messages[code], code=code)


class RegistrationForm(UserCreationForm):
    requested_role = forms.ChoiceField(
        label="I am a",
        choices=[(r.value, r.label) for r in Role if r in SELF_SERVICE_ROLES],
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "first_name", "last_name", "email", "department")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("first_name", "last_name", "email"):
            self.fields[name].required = True
        self.fields["email"].help_text = "Use your hospital e-mail address."


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class SiteForm(forms.Form):
    site = forms.ModelChoiceField(
        queryset=Site.objects.all(),
        required=False,
        empty_label="No site (own uploads only)",
        help_text="A clinician sees the studies that this site's scanners send.",
    )


class UserFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any status"),
            ("pending", "Awaiting approval"),
            ("active", "Active"),
            ("inactive", "Deactivated"),
            ("locked", "Locked out"),
        ],
    )
    role = forms.ChoiceField(required=False, choices=[("", "Any role"), *Role.choices])
    q = forms.CharField(
        required=False,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "Name, username, e-mail"}),
    )


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, label="User")
    action = forms.CharField(required=False, label="Action starts with")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any outcome"), *AuditOutcome.choices]
    )
    object_type = forms.CharField(required=False)
    object_id = forms.CharField(required=False, label="Object id")
    ip_address = forms.GenericIPAddressField(required=False, label="IP address")
    date_from = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def filters(self) -> dict:
        """Cleaned, non-empty filters; an invalid form filters nothing out silently
        but shows its errors."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v}
