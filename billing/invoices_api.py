"""Invoices API: list and read (org tokens `invoices:read`, operator tokens any customer),
the evidence CSV of each usage line, and the operator's state changes."""

from decimal import Decimal

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import invoice_selectors as selectors
from billing import invoicing, profiles
from billing.api import DecimalJSONParser
from billing.models import Invoice
from billing.pricing_api import _decimal, _is_operator
from billing.selectors import organization_get
from billing.usage_csv import export_lines
from common.errors import InvalidInput
from portal.audit import Actor
from portal.models import ApiToken

STATUSES = [*Invoice.Status.values, "upcoming"]


class _InvoiceApi(APIView):
    scopes_by_kind = {
        ApiToken.Kind.ORG: {"GET": "invoices:read"},
        ApiToken.Kind.OPERATOR: {"GET": "admin", "POST": "admin"},
    }

    def scope(self, request):
        """The org whose invoices the caller may see (None: an operator, every org)."""
        if _is_operator(request):
            customer = request.query_params.get("customer")
            return organization_get(customer) if customer else None
        return request.auth.organization

    def invoice(self, request, invoice_id) -> Invoice:
        organization = None if _is_operator(request) else request.auth.organization
        return selectors.invoice_get(invoice_id=invoice_id, organization=organization)

    def render(self, request, invoice: Invoice) -> dict:
        return selectors.invoice_json(
            invoice, operator=_is_operator(request), build_url=request.build_absolute_uri
        )


class InvoiceListApi(_InvoiceApi):
    @extend_schema(
        operation_id="invoices_list",
        parameters=[
            OpenApiParameter("customer", str, description="operator tokens only"),
            OpenApiParameter("status", str, enum=STATUSES),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        wanted = request.query_params.get("status")
        if wanted and wanted not in STATUSES:
            raise InvalidInput(
                f"status is one of {', '.join(STATUSES)}.", field="status", code="invalid_status"
            )
        invoices = selectors.invoice_list(organization=self.scope(request), status=wanted)
        if not _is_operator(request) and wanted == "draft":
            invoices = invoices.none()
        invoices = invoices.prefetch_related("lines__adjusts", "credit_notes")
        from common.pagination import CreatedCursorPagination

        paginator = CreatedCursorPagination()
        page = paginator.paginate_queryset(invoices, request, view=self)
        return paginator.get_paginated_response([self.render(request, i) for i in page])


class InvoiceDetailApi(_InvoiceApi):
    @extend_schema(operation_id="invoices_retrieve", responses={200: OpenApiTypes.OBJECT})
    def get(self, request, invoice_id):
        return Response(self.render(request, self.invoice(request, invoice_id)))


class InvoiceLineEvidenceApi(_InvoiceApi):
    """The exact ledger rows a usage line billed, as CSV."""

    @extend_schema(
        operation_id="invoices_line_evidence",
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, invoice_id, line_id):
        invoice = self.invoice(request, invoice_id)
        line = selectors.line_get(invoice=invoice, line_id=line_id)
        if line.kind not in selectors.EVIDENCE_KINDS:
            raise InvalidInput(
                "Only usage and adjustment lines have ledger evidence.", code="no_evidence"
            )
        name = f"{invoice.number or 'upcoming'}-{line.meter}-{line.position}.csv"
        response = StreamingHttpResponse(
            export_lines(selectors.evidence_rows(line)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class _InvoiceActionApi(_InvoiceApi):
    scopes_by_kind = {ApiToken.Kind.OPERATOR: {"POST": "admin"}}
    parser_classes = [DecimalJSONParser]

    def body(self, request) -> dict:
        if request.data in (None, "") or request.data == {}:
            return {}
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object.")
        return request.data


class InvoiceFinalizeApi(_InvoiceActionApi):
    """Finalizes a draft now, without waiting for its grace period."""

    @extend_schema(operation_id="invoices_finalize", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, invoice_id):
        invoice = self.invoice(request, invoice_id)
        if invoice.status != Invoice.Status.DRAFT:
            from common.errors import Conflict

            raise Conflict(f"The invoice is {invoice.status}, not a draft.", code="not_a_draft")
        if invoicing.invoice_finalize(invoice_id=invoice.pk) is None:
            from common.errors import Conflict

            raise Conflict(
                "The invoice is being finalized by a billing run right now; read it again.",
                code="finalization_in_progress",
            )
        return Response(self.render(request, self.invoice(request, invoice_id)))


class InvoiceVoidApi(_InvoiceActionApi):
    @extend_schema(operation_id="invoices_void", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, invoice_id):
        invoice = invoicing.invoice_void(
            actor=Actor.from_request(request), invoice=self.invoice(request, invoice_id)
        )
        return Response(self.render(request, invoice))


class InvoiceUncollectibleApi(_InvoiceActionApi):
    @extend_schema(
        operation_id="invoices_mark_uncollectible", request=None, responses=OpenApiTypes.OBJECT
    )
    def post(self, request, invoice_id):
        invoice = invoicing.invoice_mark_uncollectible(
            actor=Actor.from_request(request), invoice=self.invoice(request, invoice_id)
        )
        return Response(self.render(request, invoice))


class InvoiceCreditNotesApi(_InvoiceActionApi):
    @extend_schema(
        operation_id="invoices_credit_notes_create",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request, invoice_id):
        body = self.body(request)
        amount = _decimal(body.get("amount"), "amount")
        if amount == Decimal(0):
            raise InvalidInput(
                "amount is a positive amount.", field="amount", code="invalid_amount"
            )
        invoicing.credit_note_create(
            actor=Actor.from_request(request),
            invoice=self.invoice(request, invoice_id),
            amount=amount,
            reason=body.get("reason"),
            refund=body.get("refund", False),
        )
        return Response(
            self.render(request, self.invoice(request, invoice_id)), status=status.HTTP_201_CREATED
        )


class BillingProfileApi(APIView):
    """The customer's billing details: name, address, tax id, e-mail, time zone."""

    scopes_by_kind = {
        ApiToken.Kind.ORG: {"GET": "billing:read", "PATCH": "billing:write"},
        ApiToken.Kind.OPERATOR: {"GET": "admin", "PATCH": "admin"},
    }

    def organization(self, request):
        if _is_operator(request):
            customer = request.query_params.get("customer")
            if not customer:
                raise InvalidInput("Operator tokens name the customer.", field="customer")
            return organization_get(customer)
        return request.auth.organization

    @staticmethod
    def render(profile) -> dict:
        body = {name: getattr(profile, name) for name in profiles.PROFILE_FIELDS}
        body["collection"] = profile.collection
        return body

    @extend_schema(operation_id="billing_profile_retrieve", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(self.render(profiles.profile_get(self.organization(request))))

    @extend_schema(
        operation_id="billing_profile_update",
        request={"application/json": OpenApiTypes.OBJECT},
        responses=OpenApiTypes.OBJECT,
    )
    def patch(self, request):
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object.")
        profile = profiles.profile_update(
            actor=Actor.from_request(request),
            organization=self.organization(request),
            values=request.data,
        )
        return Response(self.render(profile))
