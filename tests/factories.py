"""factory-boy factories for the domain; services stay the way tests create audited state."""

import factory
from django.utils import timezone

from common.secrets import hash_secret, make_secret
from keys.format import key_generate, key_hash, key_prefix
from keys.models import ApiKey
from portal.models import ApiToken, Membership, Organization, Project, User
from portal.roles import Role
from portal.scopes import OPERATOR_SCOPES, ORG_SCOPES

DEFAULT_PASSWORD = "correct horse battery staple 42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def verified(obj, create, extracted, **kwargs):
        """Mark the address verified so allauth lets the user log in."""
        if not create:
            return
        obj.save()
        from allauth.account.models import EmailAddress

        EmailAddress.objects.get_or_create(
            user=obj, email=obj.email, defaults={"verified": True, "primary": True}
        )


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """A key row; the secret is on `obj.raw_key` for tests that need to present it."""

    class Meta:
        model = ApiKey

    project = factory.SubFactory(ProjectFactory)
    organization = factory.SelfAttribute("project.organization")
    name = factory.Sequence(lambda n: f"Key {n}")
    environment = "test"
    raw_key = factory.LazyAttribute(lambda o: key_generate(o.environment))
    key_hash = factory.LazyAttribute(lambda o: key_hash(o.raw_key))
    prefix = factory.LazyAttribute(lambda o: key_prefix(o.raw_key))
    scopes = factory.LazyFunction(lambda: ["read"])

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        raw_key = kwargs.pop("raw_key", None)
        obj = super()._create(model_class, *args, **kwargs)
        obj.raw_key = raw_key
        return obj


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """A management token; the secret is on `obj.raw_token`."""

    class Meta:
        model = ApiToken

    kind = ApiToken.Kind.ORG
    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Token {n}")
    raw_token = factory.LazyAttribute(
        lambda o: make_secret("tg_org_" if o.kind == "org" else "tg_op_", 40)
    )
    token_hash = factory.LazyAttribute(lambda o: hash_secret(o.raw_token))
    prefix = factory.LazyAttribute(lambda o: o.raw_token[:13])
    scopes = factory.LazyAttribute(
        lambda o: list(ORG_SCOPES if o.kind == "org" else OPERATOR_SCOPES)
    )
    created_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        raw_token = kwargs.pop("raw_token", None)
        obj = super()._create(model_class, *args, **kwargs)
        obj.raw_token = raw_token
        return obj
