"""allauth adapter: after login, send people to their organization (or to create one)."""

from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request) -> str:
        return reverse("portal:home")
