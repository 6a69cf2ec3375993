"""The partner application form (checks shape; the service checks the rules)."""

from decimal import Decimal

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


class AppForm(forms.Form):
    """Lists are entered one per line (redirect URIs) or as checkboxes (categories, scopes)."""

    name = forms.CharField(max_length=100)
    summary = forms.CharField(max_length=200, help_text="One line for the gallery.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), help_text="Markdown.")
    categories = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        help_text="What the app asks to call; customers see exactly these when they install.",
    )
    redirect_uris = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Redirect URIs",
        help_text="One per line: https (http only for localhost).",
    )
    support_url = forms.URLField(max_length=500, assume_scheme="https")
    privacy_url = forms.URLField(max_length=500, assume_scheme="https")
    install_url = forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        label="Install URL",
        help_text="Your app's page that starts the OAuth install (with PKCE): the gallery's "
        "Install button links to it. Leave empty if customers install from your own site.",
    )
    pricing_note = forms.CharField(max_length=300, required=False)
    price = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=8,
        decimal_places=2,
        label="Price per billing period",
        help_text="Leave empty for a free app. Billed on the customer's Tollgate invoice on "
        "top of its plan; the price is reviewed with the listing.",
    )
    currency = forms.CharField(
        max_length=3,
        min_length=3,
        required=False,
        initial="USD",
        help_text="ISO code, e.g. USD: customers on plans billed in another currency cannot "
        "install a paid app. Fixed once the app is listed at a price.",
    )

    def __init__(self, *args, categories: dict, scopes: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["categories"].choices = list(categories.items())
        self.fields["scopes"].choices = [(scope, scope) for scope in scopes]
        price = self.initial.get("price")
        if isinstance(price, Decimal):  # stored with 12 decimals; shown as entered
            self.initial["price"] = price.quantize(Decimal("0.01"))

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].strip().upper() or "USD"

    def clean_redirect_uris(self) -> list[str]:
        return [
            line.strip() for line in self.cleaned_data["redirect_uris"].splitlines() if line.strip()
        ]


class LogoForm(forms.Form):
    logo = forms.FileField(help_text="PNG, JPEG or WebP, 64-1024 px a side, at most 256 KB.")
