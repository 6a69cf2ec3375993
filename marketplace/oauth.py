"""The OAuth 2.0 provider's hooks (django-oauth-toolkit): token format, scopes, installs."""

from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes

from keys.format import key_generate


def access_token_generate(request, refresh_token: bool = False) -> str:
    return key_generate("live")


class EndpointGroupScopes(BaseScopes):
    def get_all_scopes(self):
        return {}

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return []

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return []


class InstallValidator(OAuth2Validator):
    pass
