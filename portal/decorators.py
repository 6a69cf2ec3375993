"""The one gate every organization page passes: membership, then role, then the view."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from common.errors import NotFound
from portal.roles import Permission, role_allows
from portal.selectors import membership_get

View = Callable[..., HttpResponse]


def org_member_required(permission: Permission) -> Callable[[View], View]:
    """Resolves `/o/<slug>/` to the caller's membership and checks `permission`.

    A non-member gets the same 404 as for a slug that does not exist, so a URL never
    reveals that another organization exists. A member whose role lacks the permission
    gets 403: they know the org, so hiding it would only confuse. The view receives the
    request with `organization` and `membership` set and no `slug` argument; a NotFound
    from an org-scoped selector inside it (another org's project or key id) becomes 404.
    """

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args, slug: str, **kwargs) -> HttpResponse:
            membership = membership_get(user=request.user, organization_slug=slug)
            if membership is None:
                raise Http404("No such organization.")
            request.membership = membership
            request.organization = membership.organization
            if not role_allows(membership.role, permission):
                raise PermissionDenied(f"Your role ({membership.role}) cannot do this here.")
            try:
                return view(request, *args, **kwargs)
            except NotFound as error:
                raise Http404(error.detail) from error

        return wrapper

    return decorator
