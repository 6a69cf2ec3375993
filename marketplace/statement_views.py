"""The partner's statements pages: the list, each statement as a printable HTML document,
and its lines as CSV.

Owners, admins and billing members (BILLING_MANAGE) see them: they are the partner's money.
The document and the CSV depend on the statement alone (no session, no CSRF token, no
clock), so downloading one twice gives the same bytes; the operator's admin serves the same
two through `statement_document_response` and `statement_csv_response`.
"""

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse

from billing.pricing.money import ZERO
from common.csv_export import stream_csv
from marketplace import selectors
from marketplace.models import Partner, PartnerStatement
from marketplace.statements import (
    STATEMENT_CSV_COLUMNS,
    statement_csv_rows,
    statement_get,
    statement_lines,
    statement_list,
)
from portal.decorators import org_member_required
from portal.roles import Permission


def statement_document_response(statement: PartnerStatement, *, back_url: str) -> HttpResponse:
    lines = statement_lines(statement=statement)
    body = render_to_string(
        "marketplace/statements/document.html",
        {
            "statement": statement,
            "partner": statement.partner,
            "lines": lines,
            "lines_total": sum((line.amount for line in lines), ZERO),
            "back_url": back_url,
        },
    )
    response = HttpResponse(body, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response


def statement_csv_response(statement: PartnerStatement) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        stream_csv(statement_csv_rows(statement=statement), STATEMENT_CSV_COLUMNS),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{statement.number}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response


def _partner(request: HttpRequest) -> Partner:
    partner = selectors.partner_for(organization=request.organization)
    if partner is None:
        raise Http404("This organization is not a partner.")
    return partner


@org_member_required(Permission.BILLING_MANAGE)
def statements(request: HttpRequest) -> HttpResponse:
    partner = _partner(request)
    return render(
        request,
        "marketplace/statements/list.html",
        {
            "partner": partner,
            "statements": statement_list(partner=partner),
            "nav_section": "partner",
        },
    )


@org_member_required(Permission.BILLING_MANAGE)
def statement_detail(request: HttpRequest, statement_id) -> HttpResponse:
    statement = statement_get(partner=_partner(request), statement_id=statement_id)
    back_url = reverse("marketplace:statement_list", kwargs={"slug": request.organization.slug})
    return statement_document_response(statement, back_url=back_url)


@org_member_required(Permission.BILLING_MANAGE)
def statement_csv(request: HttpRequest, statement_id) -> StreamingHttpResponse:
    statement = statement_get(partner=_partner(request), statement_id=statement_id)
    return statement_csv_response(statement)
