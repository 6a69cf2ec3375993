"""The OAuth 2.0 provider's hooks (django-oauth-toolkit): token format, scopes, installs.

django-oauth-toolkit speaks the protocol (authorization code, PKCE, refresh, revocation,
introspection); these hooks tie it to Tollgate: scopes are the API's endpoint groups, an
authorization code remembers which install it was granted for, and every access token gets
a twin live key in the install's project, so the gate checks app calls like any key. When
the provider deletes an access token, however it comes to (revocation, refresh rotation, a
replayed refresh token revoking its family), marketplace/signals.py revokes the twin key.
"""

import hashlib

from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes

from keys.format import key_generate
from marketplace import installs
from marketplace.apps_services import known_scopes
from marketplace.models import App


def access_token_generate(request, refresh_token: bool = False) -> str:
    """Access tokens have the live key format (`tg_live_…` with its checksum): the gate,
    secret scanners and our docs treat them as the keys they are."""
    return key_generate("live")


class EndpointGroupScopes(BaseScopes):
    """Scopes are the provider API's endpoint groups (read, write, bulk, …)."""

    def get_all_scopes(self) -> dict[str, str]:
        return {scope: f"Call the API's {scope} endpoints" for scope in sorted(known_scopes())}

    def get_available_scopes(self, application=None, request=None, *args, **kwargs) -> list:
        # Any endpoint group may be asked for; what is granted is narrowed at consent
        # (asked ∩ approved ∩ plan), so the consent page can show exactly what was asked.
        return sorted(known_scopes())

    def get_default_scopes(self, application=None, request=None, *args, **kwargs) -> list:
        app = App.objects.filter(oauth_application=application).first() if application else None
        return list(app.approved_scopes) if app else []


class InstallValidator(OAuth2Validator):
    """Codes and tokens belong to an install: none are issued for an app that is not
    listed or an install that has ended."""

    def validate_client_id(self, client_id, request, *args, **kwargs) -> bool:
        if not super().validate_client_id(client_id, request, *args, **kwargs):
            return False
        app = (
            App.objects.select_related("partner")
            .filter(oauth_application__client_id=client_id)
            .first()
        )
        try:
            installs.installable_app(app)
        except Exception:
            return False
        return True

    def save_authorization_code(self, client_id, code, request, *args, **kwargs) -> None:
        install_id = getattr(request, "tollgate_install_id", None)
        if install_id is None:  # only our consent view issues codes, and it always says
            raise ValueError("An authorization code needs the install it was granted for.")
        super().save_authorization_code(client_id, code, request, *args, **kwargs)
        installs.install_grant_record(
            code=code["code"], application=request.client, install_id=install_id
        )

    def validate_code(self, client_id, code, client, request, *args, **kwargs) -> bool:
        if not installs.install_usable(installs.install_for_code(code=code, application=client)):
            return False
        return super().validate_code(client_id, code, client, request, *args, **kwargs)

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs) -> bool:
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        return installs.install_usable(
            installs.install_for_refresh_token(request.refresh_token_instance)
        )

    def _save_bearer_token(self, token, request, *args, **kwargs):
        if request.grant_type == "authorization_code":
            install = installs.install_for_code(code=request.code, application=request.client)
        else:
            install = installs.install_for_refresh_token(
                getattr(request, "refresh_token_instance", None)
            )
        if not installs.install_usable(install):  # validated before; a race with uninstall
            raise ValueError("The install this token was asked for has ended.")
        result = super()._save_bearer_token(token, request, *args, **kwargs)
        raw = token["access_token"]
        access = AccessToken.objects.get(
            token_checksum=hashlib.sha256(raw.encode("utf-8")).hexdigest()
        )
        installs.app_token_record(
            install=install, raw_token=raw, access_token=access, scopes=token["scope"].split()
        )
        return result
