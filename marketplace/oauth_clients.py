"""Each app's OAuth client (django-oauth-toolkit's Application): made with the app, its
redirect URIs and scopes taken over only when the operator lists the app, and a client
secret the partner generates and sees once (it is stored hashed)."""

from django.db import transaction
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application

from common.errors import Conflict
from marketplace.models import App
from portal.audit import Actor, audit_record


def oauth_client_create(*, app: App) -> Application:
    """A confidential client for the authorization-code grant. Its redirect URIs stay empty
    until the listing is approved, so an app in draft or review cannot be authorized."""
    client = Application.objects.create(
        name=app.name[:255],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="",
        skip_authorization=False,
        hash_client_secret=True,
        client_secret=generate_client_secret(),  # unknown to anyone until reset
    )
    App.objects.filter(pk=app.pk).update(oauth_application=client)
    app.oauth_application = client
    return client


def oauth_client_approve(*, app: App) -> Application:
    """The operator listed the app: what it asked for is now what installs may grant."""
    client = app.oauth_application or oauth_client_create(app=app)
    client.name = app.name[:255]
    client.redirect_uris = " ".join(app.redirect_uris)
    client.save(update_fields=["name", "redirect_uris", "updated"])
    App.objects.filter(pk=app.pk).update(approved_scopes=sorted(app.scopes))
    app.approved_scopes = sorted(app.scopes)
    return client


def oauth_client_secret_reset(*, actor: Actor, app: App) -> str:
    """A new client secret, returned once; the old one stops working at once."""
    if app.oauth_application is None:
        raise Conflict("This app has no OAuth client.", code="oauth_client_missing")
    secret = generate_client_secret()
    with transaction.atomic():
        client = Application.objects.select_for_update().get(pk=app.oauth_application_id)
        client.client_secret = secret  # hashed by the model on save
        client.save(update_fields=["client_secret", "updated"])
        audit_record(
            actor=actor,
            action="app.client_secret_reset",
            organization=app.partner.organization,
            target=app,
            changes={"client_id": client.client_id},
        )
    return secret
