"""Portal forms: they turn what a browser sends into service arguments.

Forms check only shape (required, length, type, known choice); the rules (slug format,
scope names, CIDR syntax, who may grant which role) live in the services, and their errors
come back onto the same fields, which is why field names match the services' arguments.
"""

import re

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from common.errors import TollgateError
from keys.models import ApiKey
from portal.models import Project
from portal.roles import ROLE_CHOICES, Role, can_grant_role
from portal.scopes import ORG_SCOPES

LIST_SEPARATORS = re.compile(r"[\s,]+")
GRACE_PERIOD_CHOICES = [
    (0, "None: the old key stops working now"),
    (3600, "1 hour"),
    (86400, "24 hours"),
    (7 * 86400, "7 days"),
]


def add_service_error(form: forms.Form, error: TollgateError) -> bool:
    """Puts a service's error next to the field it names; False when no such field is here."""
    if error.field and error.field in form.fields:
        form.add_error(error.field, error.detail)
        return True
    return False


class DateTimeLocalInput(forms.DateTimeInput):
    """The browser's date-time picker; its value has no zone, and the portal reads it as UTC."""

    input_type = "datetime-local"

    def __init__(self, attrs: dict | None = None):
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")


def split_list(value: str) -> list[str]:
    return [item for item in LIST_SEPARATORS.split(value) if item]


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Your company or team.")
    slug = forms.CharField(
        max_length=50,
        required=False,
        label="URL name",
        help_text="Appears in addresses as /o/<name>/. Leave empty to derive it from the name.",
    )


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="An app or service that calls the API.")
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class KeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=200, help_text="What uses this key, so you know what breaks if you revoke it."
    )
    environment = forms.ChoiceField(
        choices=ApiKey.Environment.choices,
        initial=ApiKey.Environment.TEST,
        widget=forms.RadioSelect,
        help_text="Test keys get sandbox responses and never reach an invoice.",
    )
    scopes = forms.CharField(
        initial="read",
        help_text="Endpoint groups the key may call, separated by commas or spaces "
        "(for example: read, write, bulk).",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at (UTC)",
        widget=DateTimeLocalInput,
        help_text="Leave empty for a key that does not expire.",
    )
    allowed_cidrs = forms.CharField(
        required=False,
        label="Allowed IP ranges",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "203.0.113.0/24\n2001:db8::/32"}),
        help_text="One CIDR block per line. Leave empty to accept calls from any address.",
    )

    def clean_scopes(self) -> list[str]:
        return split_list(self.cleaned_data["scopes"])

    def clean_allowed_cidrs(self) -> list[str]:
        lines = self.cleaned_data["allowed_cidrs"].splitlines()
        return [line.strip() for line in lines if line.strip()]


class KeyRotateForm(forms.Form):
    grace_period_seconds = forms.TypedChoiceField(
        choices=GRACE_PERIOD_CHOICES,
        coerce=int,
        widget=forms.RadioSelect,
        label="Grace period",
        help_text="How long the old key keeps working, so you can deploy the new one first.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["grace_period_seconds"].initial = settings.KEY_ROTATION_DEFAULT_GRACE_SECONDS


class KeyFilterForm(forms.Form):
    project = forms.ModelChoiceField(
        queryset=Project.objects.none(), required=False, empty_label="All projects"
    )
    environment = forms.ChoiceField(
        choices=[("", "Test and live"), *ApiKey.Environment.choices], required=False
    )

    def __init__(self, *args, projects: QuerySet[Project], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects

    def filters(self) -> dict:
        """Arguments for keys.selectors.key_list; an invalid choice filters nothing."""
        if not self.is_valid():
            return {}
        project = self.cleaned_data["project"]
        return {
            "project_id": project.id if project else None,
            "environment": self.cleaned_data["environment"] or None,
        }


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.DEVELOPER)

    def __init__(self, *args, acting_role: str, **kwargs):
        super().__init__(*args, **kwargs)
        # Offer only the roles this member may grant; the service refuses the others anyway.
        self.fields["role"].choices = [
            (value, label) for value, label in ROLE_CHOICES if can_grant_role(acting_role, value)
        ]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="What automation uses this token.")
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in ORG_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="A write scope includes the matching read scope.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at (UTC)",
        widget=DateTimeLocalInput,
        help_text="Leave empty for a token that does not expire.",
    )


class AuditFilterForm(forms.Form):
    action = forms.CharField(
        max_length=100, required=False, help_text="A prefix: key. matches every key action."
    )
    actor = forms.CharField(max_length=255, required=False, help_text="Part of an e-mail address.")
    since = forms.DateTimeField(required=False, label="Since (UTC)", widget=DateTimeLocalInput)
    until = forms.DateTimeField(required=False, label="Until (UTC)", widget=DateTimeLocalInput)

    def filters(self) -> dict:
        """Arguments for portal.selectors.audit_log_list, from the fields that are valid."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value}
