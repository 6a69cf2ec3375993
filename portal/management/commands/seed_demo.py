"""Seed demo data so a first `make run` shows a populated portal. Safe to run again."""

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from common.secrets import random_base62
from keys import services as key_services
from portal import services
from portal.audit import Actor
from portal.models import Organization, Project, User

ADMIN_EMAIL = "admin@tollgate.local"
OWNER_EMAIL = "owner@acme.test"
DEV_PASSWORD = "tollgate-demo"  # printed and documented; only used with DEBUG


class Command(BaseCommand):
    help = (
        "Create an operator admin, the demo org 'acme' with an owner, a project and a test "
        "and a live key. Existing rows are left as they are."
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
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready. Operator admin: {ADMIN_EMAIL} at /admin/ ; "
                f"customer owner: {OWNER_EMAIL} at /accounts/login/ (org 'acme')."
            )
        )

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
