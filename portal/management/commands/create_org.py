"""Create an organization and its owner's account (if the owner does not exist yet)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from common.errors import TollgateError
from portal import services
from portal.audit import Actor


class Command(BaseCommand):
    help = "Create an organization with an owner; creates the owner's account if needed."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", required=True, help="the owner's e-mail address")

    def handle(self, *args, slug, name, owner, **options):
        actor = Actor.system("manage.py create_org")
        try:
            with transaction.atomic():
                user, created = services.user_get_or_create(email=owner)
                organization = services.organization_create(
                    actor=actor, name=name, slug=slug, owner=user
                )
        except TollgateError as error:
            raise CommandError(f"{error.detail} ({error.code})") from error
        if created:
            self.stdout.write(
                f"Created account {user.email} without a password: "
                "they set one through 'Forgot password' on the login page."
            )
        self.stdout.write(f"Created organization {organization.slug} owned by {user.email}.")
