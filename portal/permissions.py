"""Token scope checks for API views: each view names the scope each method needs."""

from rest_framework import exceptions, permissions

from portal.models import ApiToken
from portal.scopes import scope_satisfied


class HasTokenScope(permissions.BasePermission):
    """Views declare `required_scopes = {"GET": "keys:read", "POST": "keys:write"}`.

    A view with `token_kind = "org"` refuses operator tokens (they belong to no org), and
    vice versa. A view that declares nothing is closed, so forgetting is safe.
    """

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <token>'.")
        method = request.method.lower()
        if method not in view.http_method_names or not hasattr(view, method):
            # Not a question of scope: let the view answer 405 Method Not Allowed.
            return True
        kind = getattr(view, "token_kind", ApiToken.Kind.ORG)
        if token.kind != kind:
            raise exceptions.PermissionDenied(
                f"This endpoint needs an {kind} token.", code="wrong_token_kind"
            )
        required = getattr(view, "required_scopes", {}).get(request.method)
        if required is None and request.method in ("HEAD", "OPTIONS"):
            required = getattr(view, "required_scopes", {}).get("GET")
        if required is None:
            raise exceptions.PermissionDenied("No scope grants this.", code="insufficient_scope")
        if not scope_satisfied(token.scopes, required):
            raise exceptions.PermissionDenied(
                f"The token lacks the '{required}' scope.", code="insufficient_scope"
            )
        return True
