"""The partner application form (checks shape; the service checks the rules)."""

from django import forms

from marketplace.models import Partner


class PartnerForm(forms.ModelForm):
    website = forms.URLField(max_length=500, assume_scheme="https")
    support_url = forms.URLField(max_length=500, required=False, assume_scheme="https")

    class Meta:
        model = Partner
        fields = [
            "display_name",
            "website",
            "description",
            "support_email",
            "support_url",
            "payout_method",
            "payout_reference",
            "payout_email",
        ]
        labels = {
            "display_name": "Partner name",
            "payout_reference": "Stripe account id or transfer reference",
        }
        help_texts = {
            "display_name": "As customers will see it in the marketplace.",
            "payout_reference": "acct_… for Stripe Connect; a short reference for bank "
            "transfers (never an account number).",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}
