"""Invoices API: list and read (org tokens `invoices:read`, operator tokens any customer),
the evidence CSV of each usage line, and the operator's state changes."""

from decimal import Decimal

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
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
from portal.schema import paginated, problems

STATUSES = [*Invoice.Status.values, "upcoming"]


# --- OpenAPI shape of invoice_selectors.invoice_json -----------------------------------------
def _money(**kwargs) -> serializers.CharField:
    return serializers.CharField(help_text="A decimal string, never a float.", **kwargs)


def _start_end(name: str, **kwargs):
    return inline_serializer(
        name,
        {"start": serializers.DateTimeField(), "end": serializers.DateTimeField()},
        **kwargs,
    )


INVOICE = inline_serializer(
    "Invoice",
    {
        "id": serializers.UUIDField(),
        "number": serializers.CharField(allow_null=True, help_text="Set when finalized."),
        "status": serializers.ChoiceField(
            choices=STATUSES, help_text="Customers see drafts as `upcoming`."
        ),
        "customer": serializers.DictField(
            help_text="id, slug, name; the billing details frozen when finalized."
        ),
        "currency": serializers.CharField(),
        "period_start": serializers.DateTimeField(),
        "period_end": serializers.DateTimeField(),
        "plan": serializers.CharField(),
        "lines": inline_serializer(
            "InvoiceLine",
            {
                "id": serializers.UUIDField(),
                "kind": serializers.CharField(),
                "description": serializers.CharField(),
                "meter": serializers.CharField(allow_null=True),
                "quantity": _money(allow_null=True),
                "amount": _money(),
                "tiers": serializers.JSONField(allow_null=True),
                "evidence_url": serializers.URLField(allow_null=True),
                "usage_query_url": serializers.URLField(allow_null=True),
                "period": _start_end("InvoiceLinePeriod", allow_null=True),
                "breakdown": serializers.JSONField(allow_null=True),
                "explanation": serializers.CharField(allow_null=True),
                "adjusts": inline_serializer(
                    "InvoiceLineAdjusts",
                    {"invoice": serializers.UUIDField(), "line": serializers.UUIDField()},
                    allow_null=True,
                ),
            },
            many=True,
        ),
        "subtotal": _money(),
        "discount": _money(),
        "credits": _money(),
        "tax": _money(),
        "tax_rate": serializers.JSONField(allow_null=True),
        "total": _money(),
        "amount_paid": _money(),
        "amount_credited": _money(),
        "amount_due": _money(),
        "credit_notes": inline_serializer(
            "CreditNote",
            {
                "number": serializers.CharField(),
                "amount": _money(),
                "reason": serializers.CharField(allow_null=True, allow_blank=True),
                "created_at": serializers.DateTimeField(),
            },
            many=True,
        ),
        "issued_at": serializers.DateTimeField(allow_null=True),
        "due_at": serializers.DateTimeField(allow_null=True),
        "paid_at": serializers.DateTimeField(allow_null=True),
        "finalizes_at": serializers.DateTimeField(allow_null=True),
    },
)
INVOICE_EXAMPLE = {
    "id": "7022f53d-7d61-4ffe-a161-f845fc292fa7",
    "number": "INV-2026-000001",
    "status": "open",
    "customer": {
        "id": "39138729-b55a-4237-873c-e348e1a3a4d0",
        "slug": "acme",
        "name": "Acme",
        "email": "billing@acme.example",
        "tax_id": "",
        "address": ["1 Main Street", "Springfield"],
        "country": "US",
    },
    "currency": "USD",
    "period_start": "2026-01-01T00:00:00Z",
    "period_end": "2026-02-01T00:00:00Z",
    "plan": "growth",
    "lines": [
        {
            "id": "4ea19d8c-1659-4aeb-8bf3-8f6d91fb6ff8",
            "kind": "base_fee",
            "description": "Growth base fee",
            "meter": None,
            "quantity": None,
            "amount": "49.00",
            "tiers": [],
            "evidence_url": None,
            "usage_query_url": None,
            "period": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
            "breakdown": [],
            "explanation": None,
            "adjusts": None,
        },
        {
            "id": "7ea5eab7-fab4-48c7-86fc-2a3cb5238a12",
            "kind": "usage",
            "description": "API requests",
            "meter": "requests",
            "quantity": "250041",
            "amount": "60.02",
            "tiers": [
                {
                    "from": "0",
                    "up_to": "100000",
                    "amount": "0",
                    "quantity": "100000",
                    "flat_amount": "0",
                    "unit_amount": "0",
                },
                {
                    "from": "100000",
                    "up_to": None,
                    "amount": "60.0164",
                    "quantity": "150041",
                    "flat_amount": "0",
                    "unit_amount": "0.0004",
                },
            ],
            "evidence_url": "https://tollgate.example.com/api/v1/invoices/7022f53d-7d61-4ffe-a161-f845fc292fa7/lines/7ea5eab7-fab4-48c7-86fc-2a3cb5238a12/evidence.csv",
            "usage_query_url": "https://tollgate.example.com/api/v1/usage?meter=requests&from=2026-01-01T00%3A00%3A00%2B00%3A00&to=2026-02-01T00%3A00%3A00%2B00%3A00",
            "period": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
            "breakdown": [],
            "explanation": None,
            "adjusts": None,
        },
    ],
    "subtotal": "109.02",
    "discount": "0.00",
    "credits": "0.00",
    "tax": "0.00",
    "tax_rate": None,
    "total": "109.02",
    "amount_paid": "0.00",
    "amount_credited": "0.00",
    "amount_due": "109.02",
    "credit_notes": [],
    "issued_at": "2026-02-02T00:00:00Z",
    "due_at": "2026-02-16T00:00:00Z",
    "paid_at": None,
    "finalizes_at": None,
}


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
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
        ],
        responses={200: paginated(INVOICE, "PaginatedInvoiceList"), **problems(400, 401, 403)},
        examples=[
            OpenApiExample(
                "A page of invoices",
                response_only=True,
                value={"next": None, "previous": None, "results": [INVOICE_EXAMPLE]},
            )
        ],
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
    @extend_schema(
        operation_id="invoices_retrieve",
        responses={200: INVOICE, **problems(401, 403, 404)},
        examples=[OpenApiExample("An issued invoice", response_only=True, value=INVOICE_EXAMPLE)],
    )
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

    @extend_schema(
        operation_id="invoices_finalize",
        request=None,
        responses={200: INVOICE, **problems(401, 403, 404, 409)},
    )
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
    @extend_schema(
        operation_id="invoices_void",
        request=None,
        responses={200: INVOICE, **problems(401, 403, 404, 409)},
    )
    def post(self, request, invoice_id):
        invoice = invoicing.invoice_void(
            actor=Actor.from_request(request), invoice=self.invoice(request, invoice_id)
        )
        return Response(self.render(request, invoice))


class InvoiceUncollectibleApi(_InvoiceActionApi):
    @extend_schema(
        operation_id="invoices_mark_uncollectible",
        request=None,
        responses={200: INVOICE, **problems(401, 403, 404, 409)},
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
        responses={201: INVOICE, **problems(400, 401, 403, 404, 409)},
        examples=[
            OpenApiExample(
                "Credit part of an invoice",
                request_only=True,
                value={"amount": "10.00", "reason": "Outage on 14 January", "refund": False},
            )
        ],
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


BILLING_PROFILE = inline_serializer(
    "BillingProfile",
    {
        **{name: serializers.CharField(allow_blank=True) for name in profiles.PROFILE_FIELDS},
        "collection": serializers.CharField(help_text="How invoices are collected."),
    },
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

    @extend_schema(
        operation_id="billing_profile_retrieve",
        responses={200: BILLING_PROFILE, **problems(400, 401, 403)},
    )
    def get(self, request):
        return Response(self.render(profiles.profile_get(self.organization(request))))

    @extend_schema(
        operation_id="billing_profile_update",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: BILLING_PROFILE, **problems(400, 401, 403)},
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
