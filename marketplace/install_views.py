"""The organization's installed apps: what each may call, and uninstalling."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from common.errors import TollgateError
from marketplace import installs
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.roles import Permission


@org_member_required(Permission.ORG_VIEW)
def install_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "marketplace/installs.html",
        {
            "installs": installs.installs_for_organization(organization=request.organization),
            "can_manage": request.membership.role in installs.INSTALL_ROLES,
            "nav_section": "apps",
        },
    )


@require_POST
@org_member_required(Permission.MEMBERS_MANAGE)
def install_uninstall(request: HttpRequest, install_id) -> HttpResponse:
    install = installs.install_get(organization=request.organization, install_id=install_id)
    try:
        installs.install_uninstall(actor=Actor.from_request(request), install=install)
    except TollgateError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"{install.app.name} was uninstalled; its access ended at once.")
    return redirect("installs:list", slug=request.organization.slug)
