"""Template context: the organization the page is about, and the user's other orgs."""

from portal.roles import Permission, role_allows
from portal.selectors import memberships_for_user


def current_organization(request) -> dict:
    """`org_can.keys_manage` etc. let templates show only the links the role may follow.

    The values come from the same `role_allows` the views' decorator asks, so a link is
    shown exactly when following it would not end in 403. `nav_section` is the first word
    of the portal URL name (`key_rotate` → `key`), which names the navigation entry to mark.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    match = getattr(request, "resolver_match", None)
    in_portal = match is not None and match.namespace == "portal" and match.url_name
    return {
        "current_membership": membership,
        "current_org": getattr(request, "organization", None),
        "user_memberships": memberships_for_user(user=user),
        "org_can": {
            permission.name.lower(): membership is not None
            and role_allows(membership.role, permission)
            for permission in Permission
        },
        "nav_section": match.url_name.partition("_")[0] if in_portal else "",
    }
