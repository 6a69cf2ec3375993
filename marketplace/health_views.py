"""The operator's marketplace health page at /staff/marketplace/: staff only, read only;
every decision it points at is taken in Django admin, where it links."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marketplace.health import marketplace_health


@staff_member_required
def health(request: HttpRequest) -> HttpResponse:
    return render(request, "marketplace/health.html", {"health": marketplace_health()})
