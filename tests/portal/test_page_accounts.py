"""Account pages served by allauth in the portal's layout: sign-up, login, reset, two-factor."""

import re
import time
from urllib.parse import urlsplit

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.core import mail
from django.urls import reverse

from portal.models import User
from tests.factories import DEFAULT_PASSWORD, UserFactory

NEW_PASSWORD = "a brand new passphrase 73"


@pytest.fixture(autouse=True)
def _no_login_rate_limits(settings):
    # allauth counts attempts per IP in the cache (Redis), which outlives a test: a few runs
    # of the suite within a minute would otherwise trip its limits and fail at random.
    settings.ACCOUNT_RATE_LIMITS = False


def current_totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))


def link_in_last_email(path_pattern: str) -> str:
    """The path of the first link in the newest e-mail whose path matches the pattern."""
    links = re.findall(r"https?://\S+", mail.outbox[-1].body)
    return next(urlsplit(link).path for link in links if re.search(path_pattern, link))


def log_in(client, email: str, password: str = DEFAULT_PASSWORD):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def turn_on_totp(client) -> str:
    """Confirms the password (allauth asks before security changes), then activates TOTP."""
    activate = reverse("mfa_activate_totp")
    assert client.get(activate)["Location"].startswith(reverse("account_reauthenticate"))
    client.post(reverse("account_reauthenticate"), {"password": DEFAULT_PASSWORD})
    page = client.get(activate)
    assert page.status_code == 200
    assert b"css/portal.css" in page.content
    secret = client.session[SECRET_SESSION_KEY]
    return client.post(activate, {"code": current_totp_code(secret)})


def test_account_pages_use_the_portal_layout(client, db):
    for name in ("account_login", "account_signup", "account_reset_password"):
        page = client.get(reverse(name)).content.decode()
        assert "css/portal.css" in page
        assert 'class="brand"' in page
        assert '<main id="main" class="entrance">' in page


def test_sign_up_verify_and_land_on_organization_creation(client, db):
    response = client.post(
        reverse("account_signup"),
        {"email": "Founder@Example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email="founder@example.com")
    assert not user.emailaddress_set.get().verified

    confirm_path = link_in_last_email(r"/accounts/confirm-email/")
    assert b"Confirm" in client.get(confirm_path).content
    response = client.post(confirm_path, follow=True)
    assert response.redirect_chain[-1][0] == reverse("portal:organization_create")
    assert user.emailaddress_set.get().verified


def test_sign_up_errors_are_shown_next_to_the_fields(client, db):
    response = client.post(
        reverse("account_signup"),
        {"email": "not-an-address", "password1": "short", "password2": "short"},
    )
    page = response.content.decode()
    assert re.search(r'id="id_email_errors">\s*<li>Enter a valid email address', page)
    assert re.search(r'id="id_password1_errors">\s*<li>This password is too short', page)
    assert not User.objects.exists()


def test_login_goes_home_and_logout_is_a_post(client, db):
    user = UserFactory()
    response = log_in(client, user.email)
    assert response["Location"] == reverse("portal:home")
    page = client.get(reverse("portal:organization_create")).content.decode()
    assert re.search(r'<form method="post" action="/accounts/logout/">', page)

    client.post(reverse("account_logout"))
    assert client.get(reverse("portal:organization_create")).status_code == 302


def test_a_wrong_password_does_not_log_in(client, db):
    user = UserFactory()
    response = log_in(client, user.email, "not the password")
    assert response.status_code == 200
    assert b"errors" in response.content
    assert "_auth_user_id" not in client.session


def test_password_reset_through_the_emailed_link(client, db):
    user = UserFactory()
    response = client.post(reverse("account_reset_password"), {"email": user.email})
    assert response["Location"] == reverse("account_reset_password_done")

    key_path = link_in_last_email(r"/accounts/password/reset/key/")
    form_path = client.get(key_path)["Location"]  # allauth moves the key out of the URL
    response = client.post(form_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response["Location"] == reverse("account_reset_password_from_key_done")

    assert log_in(client, user.email, DEFAULT_PASSWORD).status_code == 200  # refused
    assert log_in(client, user.email, NEW_PASSWORD)["Location"] == reverse("portal:home")


def test_a_user_turns_on_totp_and_gets_recovery_codes(client, db):
    user = UserFactory()
    log_in(client, user.email)
    response = turn_on_totp(client)
    assert response["Location"] == reverse("mfa_view_recovery_codes")

    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    recovery = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    codes = RecoveryCodes(recovery).get_unused_codes()
    assert len(codes) == mfa_settings.RECOVERY_CODE_COUNT
    codes_page = client.get(reverse("mfa_view_recovery_codes")).content.decode()
    assert all(code in codes_page for code in codes)


def test_a_wrong_totp_code_activates_nothing(client, db):
    user = UserFactory()
    log_in(client, user.email)
    client.post(reverse("account_reauthenticate"), {"password": DEFAULT_PASSWORD})
    client.get(reverse("mfa_activate_totp"))
    response = client.post(reverse("mfa_activate_totp"), {"code": "000000x"})
    assert response.status_code == 200
    assert b'id="id_code_errors"' in response.content
    assert not Authenticator.objects.filter(user=user).exists()


def test_after_totp_is_on_login_asks_for_a_code(client, db):
    user = UserFactory()
    log_in(client, user.email)
    turn_on_totp(client)
    client.post(reverse("account_logout"))

    response = log_in(client, user.email)
    assert response["Location"] == reverse("mfa_authenticate")
    assert "_auth_user_id" not in client.session
    recovery = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    code = RecoveryCodes(recovery).get_unused_codes()[0]
    response = client.post(reverse("mfa_authenticate"), {"code": code})
    assert response["Location"] == reverse("portal:home")
    assert client.session["_auth_user_id"] == str(user.pk)
