"""Reads for apps, always through the partner's own organization (or the public gallery)."""

from django.db.models import QuerySet

from common.errors import NotFound
from marketplace.models import App, Partner


def app_list(*, partner: Partner) -> QuerySet[App]:
    return App.objects.filter(partner=partner).defer("logo").order_by("name")


def app_get(*, partner: Partner | None, app_id) -> App:
    """Another organization's app is simply not found."""
    if partner is None:
        raise NotFound("No such app.")
    app = App.objects.filter(partner=partner, pk=app_id).select_related("partner").first()
    if app is None:
        raise NotFound("No such app.")
    return app
