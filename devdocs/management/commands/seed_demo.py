"""Seed demo data so a first `make run` shows a populated portal. Safe to run again.

It lives in the top-most app (devdocs) so it may seed every layer: tenancy, keys, usage,
billing, the docs portal.
"""

import json
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from billing.demo_catalog import ensure_demo_catalog
from billing.ingest import usage_ingest
from billing.invoicing import billing_run
from billing.models import BillingProfile, Plan
from billing.profiles import profile_update
from billing.subscriptions import subscription_current, subscription_subscribe
from common.secrets import random_base62
from devdocs.changelog import deprecation_create
from devdocs.models import ChangelogEntry, Deprecation
from keys import services as key_services
from keys.models import ApiVersion
from marketplace.models import Partner, PartnerTier
from marketplace.services import partner_apply, partner_decide
from portal import services
from portal.audit import Actor
from portal.models import Organization, Project, User

ADMIN_EMAIL = "admin@tollgate.local"
OWNER_EMAIL = "owner@acme.test"
PARTNER_EMAIL = "owner@docsync.test"
DEV_PASSWORD = "tollgate-demo"  # printed and documented; only used with DEBUG
# acme subscribed this many days ago: its first period is closed and invoiced, and the
# ledger still accepts all of its usage (USAGE_LATE_ARRIVAL_DAYS is 35).
DEMO_HISTORY_DAYS = 33
# The provider's API of the demo: its reference, sandbox and collections are in the docs.
DEMO_API_DOCUMENT = Path(settings.BASE_DIR) / "docs" / "examples" / "documents_api.json"


class Command(BaseCommand):
    help = (
        "Create an operator admin, the demo org 'acme' with an owner, a project with a test "
        "and a live key, a month of usage, and the demo plans with acme on Pro (one invoice). "
        "Existing rows are left as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            help="password for new demo accounts (default: 'tollgate-demo' with DEBUG, "
            "else random and printed)",
        )

    def handle(self, *args, password=None, **options):
        password = password or (DEV_PASSWORD if settings.DEBUG else random_base62(20))
        actor = Actor.system("seed_demo")
        with transaction.atomic():
            self._user(ADMIN_EMAIL, password, staff=True)
            owner = self._user(OWNER_EMAIL, password, staff=False)
            organization = Organization.objects.filter(slug="acme").first()
            if organization is None:
                organization = services.organization_create(
                    actor=actor, name="Acme Corp", slug="acme", owner=owner
                )
            project = Project.objects.filter(organization=organization, name="Demo app").first()
            if project is None:
                project = services.project_create(
                    actor=actor,
                    organization=organization,
                    name="Demo app",
                    description="Seeded by seed_demo: a project with a test and a live key.",
                )
            for environment in ("test", "live"):
                if not project.keys.filter(environment=environment).exists():
                    _key, raw = key_services.key_create(
                        actor=actor,
                        project=project,
                        name=f"Demo {environment} key",
                        environment=environment,
                        scopes=["read", "write"],
                    )
                    self.stdout.write(f"Created {environment} key (shown once): {raw}")
        for item in ensure_demo_catalog(actor=actor):
            self.stdout.write(f"Created {item}")
        if not ApiVersion.objects.filter(product__code="documents", version="v1").exists():
            document = json.loads(DEMO_API_DOCUMENT.read_text())
            key_services.api_version_create(
                actor=actor, product_code="documents", version="v1", document=document
            )
            self.stdout.write("Created the demo API: documents v1 (docs at /docs/documents/v1/).")
        self._changelog(actor)
        self._partner(actor, password)
        if not BillingProfile.objects.filter(organization=organization).exists():
            profile_update(
                actor=actor,
                organization=organization,
                legal_name="Acme Corporation",
                billing_email=OWNER_EMAIL,
                address_line1="1 Infinite Loop",
                postal_code="95014",
                city="Cupertino",
                region="CA",
                country="US",
                timezone="America/Los_Angeles",
            )
        if subscription_current(organization=organization) is None:
            # Subscribed a month and a bit ago, so the demo has an invoice to show.
            subscription_subscribe(
                actor=actor,
                organization=organization,
                plan=Plan.objects.get(code="pro"),
                now=timezone.now() - timedelta(days=DEMO_HISTORY_DAYS),
            )
            self.stdout.write("Subscribed acme to Pro.")
        accepted = self._usage(organization, project)
        if accepted:
            self.stdout.write(f"Recorded {accepted} demo usage events.")
        closed = billing_run(as_of=timezone.now())
        if closed.finalized:
            numbers = ", ".join(invoice.number for invoice in closed.finalized)
            self.stdout.write(f"Closed the first billing period: invoice {numbers}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready. Operator admin: {ADMIN_EMAIL} at /admin/ ; "
                f"customer owner: {OWNER_EMAIL} at /accounts/login/ (org 'acme'); "
                f"partner owner: {PARTNER_EMAIL} (org 'docsync')."
            )
        )

    def _changelog(self, actor: Actor) -> None:
        """A release note and the render endpoint's deprecation, so /changelog has content."""
        version = ApiVersion.objects.get(product__code="documents", version="v1")
        if not ChangelogEntry.objects.filter(slug="documents-api-v1").exists():
            ChangelogEntry.objects.create(
                slug="documents-api-v1",
                title="Documents API v1",
                kind=ChangelogEntry.Kind.ADDED,
                product=version.product,
                api_version=version,
                body="Create, read, update and delete documents; bulk creation runs as a job "
                "(`POST /documents/bulk`, then `GET /jobs/{job_id}`).",
                published_at=version.created_at,
            )
        render = version.endpoints.filter(path_template="/documents/{document_id}/render").first()
        if render is not None and not Deprecation.objects.filter(endpoint=render).exists():
            deprecation_create(
                actor=actor,
                api_version=version,
                endpoint=render,
                sunset_at=render.sunset_at or timezone.now() + timedelta(days=180),
                replacement="GET /documents/{document_id}, then render `body` on your side",
                migration_guide="Fetch the document and render its `body` (Markdown) yourself.",
            )
            self.stdout.write("Announced the demo deprecation (see /changelog/deprecations).")

    def _usage(self, organization: Organization, project: Project) -> int:
        """A month of plausible usage; event ids are fixed, so a rerun adds nothing."""
        live_key = project.keys.filter(environment="live").order_by("created_at").first()
        generator = random.Random(42)  # noqa: S311 - demo data, the same every time
        today = timezone.now().replace(minute=0, second=0, microsecond=0)
        endpoints = ["GET /v1/documents", "POST /v1/documents", "GET /v1/documents/{id}"]
        events = []
        for days_ago in range(DEMO_HISTORY_DAYS, -1, -1):
            moment = today - timedelta(days=days_ago)
            for n in range(generator.randint(20, 40)):
                events.append(
                    {
                        "id": f"demo-req-{days_ago}-{n}",
                        "meter": "requests",
                        "key_id": str(live_key.id) if live_key else None,
                        "customer": organization.slug,
                        "endpoint": generator.choice(endpoints),
                        "timestamp": (moment - timedelta(minutes=n)).isoformat(),
                    }
                )
            events.append(
                {
                    "id": f"demo-records-{days_ago}",
                    "meter": "records_processed",
                    "customer": organization.slug,
                    "project": str(project.id),
                    "quantity": str(generator.randint(500, 5000)),
                    "timestamp": moment.isoformat(),
                }
            )
            events.append(
                {
                    "id": f"demo-storage-{days_ago}",
                    "meter": "storage_gb",
                    "customer": organization.slug,
                    "quantity": str(round(2 + days_ago * 0.05, 1)),
                    "timestamp": moment.isoformat(),
                }
            )
        accepted = 0
        for start in range(0, len(events), 1000):
            accepted += usage_ingest(events=events[start : start + 1000]).accepted
        return accepted

    def _partner(self, actor: Actor, password: str) -> None:
        """DocSync Labs, an approved partner with nothing listed yet: a marketplace
        walk-through starts from its partner page (docs/marketplace.md)."""
        owner = self._user(PARTNER_EMAIL, password, staff=False)
        organization = Organization.objects.filter(slug="docsync").first()
        if organization is None:
            organization = services.organization_create(
                actor=actor, name="DocSync Labs", slug="docsync", owner=owner
            )
        if Partner.objects.filter(organization=organization).exists():
            return
        partner = partner_apply(
            actor=actor,
            organization=organization,
            display_name="DocSync Labs",
            website="https://docsync.example.com",
            description="Keeps documents in sync with the tools teams already use.",
            support_email=PARTNER_EMAIL,
            payout_method=Partner.PayoutMethod.BANK_TRANSFER,
            payout_reference="DOCSYNC-DEMO",
            payout_email=PARTNER_EMAIL,
        )
        tier = PartnerTier.objects.order_by("rank").first()
        if tier is None:  # the migration's tiers were removed: a default, as it would seed
            tier = PartnerTier.objects.create(
                code="registered",
                name="Registered",
                revenue_share_percent=Decimal("70.00"),
                rank=10,
            )
        partner_decide(actor=actor, partner=partner, status="approved", tier=tier)
        self.stdout.write(f"Created the approved partner DocSync Labs (owner {PARTNER_EMAIL}).")

    def _user(self, email: str, password: str, *, staff: bool) -> User:
        user = User.objects.filter(email=email).first()
        if user is not None:
            return user
        if staff:
            user = User.objects.create_superuser(email=email, password=password)
        else:
            user = User.objects.create_user(email=email, password=password)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        self.stdout.write(f"Created {email} with password: {password}")
        return user
