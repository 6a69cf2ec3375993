"""Who is reading the docs, and which of their values go into samples.

Signed-in readers who may use their organization's keys (owners, admins, developers) see
their own test key and the sandbox URL in every sample, guide and collection; everyone else
sees a placeholder. Only test keys are ever shown again (keys/services.test_key_secret);
they reach the sandbox and the provider's test mode, never an invoice or a live quota.
"""

from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from keys.models import ApiKey
from keys.services import test_key_secret
from portal.models import Organization
from portal.roles import Permission, role_allows
from portal.selectors import memberships_for_user

KEY_PLACEHOLDER = "YOUR_TEST_KEY"
SESSION_ORG = "docs_org"
CANDIDATE_KEYS = 20


@dataclass(frozen=True)
class Reader:
    site_url: str  # scheme://host of this deployment, no trailing slash
    organization: Organization | None = None
    key: ApiKey | None = None
    secret: str | None = None

    @property
    def signed_in_with_key(self) -> bool:
        return self.secret is not None

    @property
    def api_key(self) -> str:
        """The reader's own test key, or a placeholder to replace."""
        return self.secret or KEY_PLACEHOLDER

    def sandbox_url(self, product_code: str, version: str) -> str:
        return f"{self.site_url}/sandbox/{quote(product_code, safe='')}/{quote(version, safe='')}"


def site_url(request: HttpRequest | None) -> str:
    if request is None:
        return settings.SITE_URL.rstrip("/")
    return request.build_absolute_uri("/").rstrip("/")


def _organization(request: HttpRequest) -> Organization | None:
    """The org the reader asked for (`?org=`), else the one last used in the docs, else the
    first one whose role may use keys."""
    organizations = key_organizations(request)
    if not organizations:
        return None
    by_slug = {organization.slug: organization for organization in organizations}
    wanted = request.GET.get("org") or request.session.get(SESSION_ORG)
    if wanted in by_slug:
        if request.session.get(SESSION_ORG) != wanted:
            request.session[SESSION_ORG] = wanted
        return by_slug[wanted]
    return organizations[0]


def key_organizations(request: HttpRequest) -> list[Organization]:
    """The reader's organizations whose keys they may use (owner, admin, developer): the
    choices of `?org=` on the docs pages."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    return [
        membership.organization
        for membership in memberships_for_user(user=user)
        if role_allows(membership.role, Permission.KEYS_MANAGE)
    ]


def _usable_test_key(organization: Organization, user) -> tuple[ApiKey, str] | None:
    """The newest active test key of the org, preferring the reader's own keys."""
    now = timezone.now()
    candidates = (
        ApiKey.objects.filter(
            organization=organization,
            environment=ApiKey.Environment.TEST,
            revoked_at__isnull=True,
        )
        .exclude(secret_encrypted="")
        .order_by("-created_at")[:CANDIDATE_KEYS]
    )
    active = [key for key in candidates if key.status_at(now) == ApiKey.Status.ACTIVE]
    active.sort(key=lambda key: key.created_by_id != user.pk)  # stable: own keys first
    for key in active:
        secret = test_key_secret(key)
        if secret is not None:
            return key, secret
    return None


def reader_for(request: HttpRequest) -> Reader:
    base = site_url(request)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Reader(site_url=base)
    organization = _organization(request)
    if organization is None:
        return Reader(site_url=base)
    found = _usable_test_key(organization, user)
    if found is None:
        return Reader(site_url=base, organization=organization)
    key, secret = found
    return Reader(site_url=base, organization=organization, key=key, secret=secret)
