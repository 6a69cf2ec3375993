"""Base classes for API views: org-scoped access and the acting principal."""

from functools import cached_property

from rest_framework.views import APIView

from portal.audit import Actor
from portal.models import ApiToken, Organization


class OrgApiView(APIView):
    """An endpoint that acts for the organization the org token belongs to."""

    token_kind = ApiToken.Kind.ORG
    required_scopes: dict[str, str] = {}

    @cached_property
    def organization(self) -> Organization:
        return self.request.auth.organization

    @cached_property
    def actor(self) -> Actor:
        return Actor.from_request(self.request)


class OperatorApiView(APIView):
    """An endpoint for the provider's own systems (operator tokens)."""

    token_kind = ApiToken.Kind.OPERATOR
    required_scopes: dict[str, str] = {}

    @cached_property
    def actor(self) -> Actor:
        return Actor.from_request(self.request)
