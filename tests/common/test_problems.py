"""RFC 9457 problem+json: errors from services, DRF and crashes all leave in the same shape."""

import pytest
from rest_framework.exceptions import ErrorDetail

from common.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TollgateError
from common.lookups import get_or_not_found
from common.problems import _flatten_validation_errors, problem_body
from common.request_id import reset_current_request_id, set_current_request_id
from portal.models import Project


def test_problem_body_has_the_rfc_9457_fields_and_the_request_id():
    token = set_current_request_id("req_problem")
    try:
        body = problem_body(status=409, code="slug_taken", title="Conflict", detail="Taken.")
    finally:
        reset_current_request_id(token)
    assert body == {
        "type": "https://tollgate.dev/problems/slug_taken",
        "title": "Conflict",
        "status": 409,
        "code": "slug_taken",
        "detail": "Taken.",
        "request_id": "req_problem",
    }


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidInput, 400, "validation_error"),
        (NotFound, 404, "not_found"),
        (PermissionDenied, 403, "permission_denied"),
        (Conflict, 409, "conflict"),
        (TollgateError, 400, "error"),
    ],
)
def test_service_errors_carry_a_status_and_a_stable_code(error, status, code):
    raised = error()
    assert (raised.status, raised.code) == (status, code)
    assert raised.detail == error.title


def test_service_error_with_a_field_lists_it_in_errors():
    raised = InvalidInput("Too long.", field="name", code="too_long")
    assert raised.code == "too_long"
    assert raised.extra["errors"] == [{"field": "name", "code": "too_long", "detail": "Too long."}]


def test_nested_validation_errors_flatten_to_dotted_fields():
    detail = {
        "name": [ErrorDetail("Required.", code="required")],
        "limits": {"rate": [ErrorDetail("Too big.", code="max_value")]},
        "scopes": {0: [ErrorDetail("Bad.", code="invalid")], 2: [ErrorDetail("No.", code="x")]},
        "items": [{}, {"name": [ErrorDetail("Blank.", code="blank")]}],
        "non_field_errors": [ErrorDetail("Inconsistent.", code="invalid")],
    }
    assert _flatten_validation_errors(detail) == [
        {"field": "name", "code": "required", "detail": "Required."},
        {"field": "limits.rate", "code": "max_value", "detail": "Too big."},
        {"field": "scopes[0]", "code": "invalid", "detail": "Bad."},
        {"field": "scopes[2]", "code": "x", "detail": "No."},
        {"field": "items[1].name", "code": "blank", "detail": "Blank."},
        {"field": None, "code": "invalid", "detail": "Inconsistent."},
    ]


def test_validation_problem_names_the_first_field_in_its_detail(api):
    response = api.post("/api/v1/keys", {}, format="json")
    body = response.json()
    assert response.status_code == 400
    first = body["errors"][0]
    assert body["detail"].startswith(f"{first['field']}: ")


def test_unhandled_error_in_an_api_view_is_a_500_problem_without_internals(api, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("portal.selectors.project_list", crash)
    response = api.get("/api/v1/projects")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == response["X-Request-Id"]
    assert b"secret internal detail" not in response.content


@pytest.mark.parametrize("pk", ["nope", None, 42, "", "00000000-0000-0000-0000-00000000000g"])
def test_lookup_of_a_malformed_id_is_not_found_without_a_query(db, pk, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(NotFound):
        get_or_not_found(Project.objects.all(), pk, "project")
