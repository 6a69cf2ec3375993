"""Portal forms for webhook endpoints and their delivery log.

Forms check shape only; the rules (URL policy, known event types) live in webhooks.endpoints
and their errors come back onto the fields of the same names.
"""

from django import forms

from portal.forms import DateTimeLocalInput
from webhooks import catalog
from webhooks.endpoints import MAX_DESCRIPTION_LENGTH, MAX_DISABLED_REASON_LENGTH, MAX_URL_LENGTH
from webhooks.models import WebhookEndpoint

STATUS_FILTER_CHOICES = [
    ("", "Any outcome"),
    ("succeeded", "Succeeded (2xx)"),
    ("failed", "Failed"),
    ("4xx", "4xx responses"),
    ("5xx", "5xx responses"),
    ("no_response", "No response (network error, timeout)"),
]


def event_type_choices() -> list[tuple[str, str]]:
    """Read at form creation, so types added to the catalog show up without a restart."""
    return [(name, name) for name in sorted(catalog.CATALOG)]


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=MAX_URL_LENGTH,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/webhooks/tollgate"}),
        help_text="Live endpoints need https:// and a public address.",
    )
    environment = forms.ChoiceField(
        choices=WebhookEndpoint.Environment.choices,
        initial=WebhookEndpoint.Environment.TEST,
        widget=forms.RadioSelect,
        help_text="Test endpoints receive the events of test keys and test data; live "
        "endpoints receive production events.",
    )
    event_types = forms.MultipleChoiceField(
        label="Event types",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave every box empty to receive every event type, including new ones.",
    )
    description = forms.CharField(
        max_length=MAX_DESCRIPTION_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_types"].choices = event_type_choices()


class DisableForm(forms.Form):
    reason = forms.CharField(max_length=MAX_DISABLED_REASON_LENGTH, required=False)


class AttemptFilterForm(forms.Form):
    status = forms.ChoiceField(choices=STATUS_FILTER_CHOICES, required=False, label="Outcome")
    event_type = forms.ChoiceField(required=False, label="Event type")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_type"].choices = [("", "Any event type"), *event_type_choices()]

    def filters(self) -> dict:
        """The valid filters only: a bad value in the query string is ignored, not a 500."""
        if not self.is_valid():
            return {}
        return {name: value for name, value in self.cleaned_data.items() if value}


class ReplayForm(forms.Form):
    since = forms.DateTimeField(
        widget=DateTimeLocalInput(),
        help_text="UTC. At most 14 days back: every event since then is sent again, once.",
    )
