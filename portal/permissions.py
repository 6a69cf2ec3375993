"""Token scope checks for API views: each view names the scope each method needs."""

from rest_framework import exceptions, permissions

from portal.models import ApiToken
from portal.scopes import scope_satisfied


def _scopes_for(view, kind: str) -> dict[str, str] | None:
    """The view's {method: scope} for this kind of token, or None if the kind is not allowed.

    A view either declares `token_kind` + `required_scopes` (one kind), or `scopes_by_kind`
    ({"org": {...}, "operator": {...}}) when both kinds may call it.
    """
    by_kind = getattr(view, "scopes_by_kind", None)
    if by_kind is not None:
        return by_kind.get(kind)
    if kind != getattr(view, "token_kind", ApiToken.Kind.ORG):
        return None
    return getattr(view, "required_scopes", {})


def _other_kind_may(view, kind: str, method: str) -> bool:
    by_kind = getattr(view, "scopes_by_kind", None) or {}
    return any(method in scopes for other, scopes in by_kind.items() if other != kind)


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
        scopes = _scopes_for(view, token.kind)
        if scopes is None:
            other = "org" if token.kind == ApiToken.Kind.OPERATOR else "operator"
            raise exceptions.PermissionDenied(
                f"This endpoint needs an {other} token.", code="wrong_token_kind"
            )
        required = scopes.get(request.method)
        if required is None and request.method in ("HEAD", "OPTIONS"):
            required = scopes.get("GET")
        if required is None:
            if _other_kind_may(view, token.kind, request.method):
                raise exceptions.PermissionDenied(
                    "Only the other kind of token may do this.", code="wrong_token_kind"
                )
            raise exceptions.PermissionDenied("No scope grants this.", code="insufficient_scope")
        if not scope_satisfied(token.scopes, required):
            raise exceptions.PermissionDenied(
                f"The token lacks the '{required}' scope.", code="insufficient_scope"
            )
        return True
