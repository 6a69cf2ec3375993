"""Create a management API token; the secret is printed alone on the last line."""

from django.core.management.base import BaseCommand, CommandError

from common.errors import TollgateError
from portal import services
from portal.audit import Actor
from portal.models import ApiToken, Organization


class Command(BaseCommand):
    help = (
        "Create an org token (--org SLUG) or an operator token (--operator). "
        "--scopes a,b or --scopes all. The token is printed alone on the last line."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--org", help="slug of the organization the token acts for")
        target.add_argument("--operator", action="store_true", help="a platform token")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help="comma-separated, or 'all'")

    def handle(self, *args, org, operator, name, scopes, **options):
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organization with slug '{org}'.")
        kind = ApiToken.Kind.OPERATOR if operator else ApiToken.Kind.ORG
        scope_list = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        try:
            token, raw = services.token_create(
                actor=Actor.system("manage.py create_token"),
                kind=kind,
                organization=organization,
                name=name,
                scopes=scope_list,
            )
        except TollgateError as error:
            raise CommandError(f"{error.detail} ({error.code})") from error
        self.stderr.write(
            f"Created {kind} token '{token.name}' with scopes: {', '.join(token.scopes)}. "
            "Store it now: it is not shown again."
        )
        self.stdout.write(raw)
