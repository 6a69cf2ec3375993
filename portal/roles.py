"""Organization roles and what each may do; every page and endpoint asks `role_allows`."""

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    BILLING = "billing"
    VIEWER = "viewer"


class Permission(StrEnum):
    ORG_VIEW = "org.view"
    PROJECTS_VIEW = "projects.view"
    ORG_MANAGE = "org.manage"
    MEMBERS_MANAGE = "members.manage"
    TOKENS_MANAGE = "tokens.manage"
    PROJECTS_MANAGE = "projects.manage"
    KEYS_MANAGE = "keys.manage"
    BILLING_MANAGE = "billing.manage"
    AUDIT_VIEW = "audit.view"


_ALL = frozenset(Permission)
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL - {Permission.ORG_MANAGE},
    Role.DEVELOPER: frozenset(
        {
            Permission.ORG_VIEW,
            Permission.PROJECTS_VIEW,
            Permission.PROJECTS_MANAGE,
            Permission.KEYS_MANAGE,
        }
    ),
    # Billing people see the org and its money, not its projects and keys.
    Role.BILLING: frozenset({Permission.ORG_VIEW, Permission.BILLING_MANAGE}),
    Role.VIEWER: frozenset({Permission.ORG_VIEW, Permission.PROJECTS_VIEW}),
}

ROLE_CHOICES = [(role.value, role.value.title()) for role in Role]


def role_allows(role: str, permission: Permission) -> bool:
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def can_grant_role(granter_role: str, role: str) -> bool:
    """Only owners make owners; admins may grant any other role."""
    if granter_role == Role.OWNER:
        return True
    return granter_role == Role.ADMIN and role != Role.OWNER
