from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    """Partners, their apps and listings, installs and revenue share (MKT-1..5)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "marketplace"

    def ready(self) -> None:
        from marketplace import signals  # noqa: F401  (connects the receivers)
