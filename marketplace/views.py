"""The partner program page of an organization: apply, see the decision, edit the profile.

Owners and admins (MEMBERS_MANAGE) run it: it commits the organization and says where
its money goes.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from common.errors import TollgateError
from marketplace import selectors, services
from marketplace.forms import PartnerForm
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.forms import add_service_error
from portal.roles import Permission


@org_member_required(Permission.MEMBERS_MANAGE)
def partner_page(request: HttpRequest) -> HttpResponse:
    partner = selectors.partner_for(organization=request.organization)
    form = PartnerForm(request.POST or None, instance=partner)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.partner_apply(
                actor=Actor.from_request(request),
                organization=request.organization,
                **{name: form.cleaned_data[name] for name in services.APPLICATION_FIELDS},
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                messages.error(request, error.detail)
        else:
            if partner is None or partner.status == "rejected":
                messages.success(request, "Application sent. The operator reviews it.")
            else:
                messages.success(request, f"{saved.display_name} saved.")
            return redirect("marketplace:partner", slug=request.organization.slug)
    return render(
        request,
        "marketplace/partner.html",
        {"partner": partner, "form": form, "nav_section": "partner"},
    )
