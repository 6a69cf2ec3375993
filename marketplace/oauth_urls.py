"""The OAuth 2.0 endpoints apps use, at /o/ (before the portal's /o/<slug>/ pages; these
names are reserved as organization slugs)."""

from django.urls import path
from oauth2_provider import views as oauth_views

from marketplace.oauth_views import AppIntrospectView, InstallAuthorizationView

app_name = "oauth2_provider"

urlpatterns = [
    path("authorize/", InstallAuthorizationView.as_view(), name="authorize"),
    path("token/", oauth_views.TokenView.as_view(), name="token"),
    path("revoke_token/", oauth_views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", AppIntrospectView.as_view(), name="introspect"),
]
