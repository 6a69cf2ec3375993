"""Template context: the organization the page is about, and the user's other orgs."""

from portal.selectors import memberships_for_user


def current_organization(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_membership": getattr(request, "membership", None),
        "current_org": getattr(request, "organization", None),
        "user_memberships": memberships_for_user(user=user),
    }
