"""Signal receivers: the one place the OAuth provider's own deletions reach Tollgate."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver
from oauth2_provider.models import AccessToken

from marketplace.installs import app_token_revoked


@receiver(pre_delete, sender=AccessToken, dispatch_uid="marketplace.access_token_revoked")
def access_token_deleted(sender, instance: AccessToken, **kwargs) -> None:
    # pre_delete, not post_delete: the AppToken still points at the token (SET_NULL runs
    # between the two signals).
    app_token_revoked(access_token_id=instance.pk)
