"""Request ids: every response carries one; a safe incoming id is kept, anything else replaced."""

import logging
import re

import pytest

from common.logging import RequestIdFilter
from common.request_id import (
    accept_or_create,
    current_request_id,
    new_request_id,
    reset_current_request_id,
    set_current_request_id,
)

GENERATED = re.compile(r"^req_[0-9a-f]{32}$")


def test_new_ids_are_prefixed_and_unique():
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(GENERATED.match(value) for value in ids)


@pytest.mark.parametrize(
    "incoming",
    ["abcdefgh", "lb-1234.5678:90_AB", "x" * 128, "00000000-0000-0000-0000-000000000000"],
)
def test_safe_incoming_id_is_kept(incoming):
    assert accept_or_create(incoming) == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        None,
        "",
        "short",
        "x" * 129,
        "abc\ndef-ghij",
        "abc\r\nSet-Cookie: x=1",
        "has spaces in it",
        "<script>x",
    ],
    ids=["none", "empty", "too short", "too long", "newline", "header injection", "space", "html"],
)
def test_unsafe_incoming_id_is_replaced(incoming):
    assert GENERATED.match(accept_or_create(incoming))


def test_response_without_an_incoming_id_gets_a_generated_one(db, anonymous_api):
    response = anonymous_api.get("/api/v1/health")
    assert GENERATED.match(response["X-Request-Id"])


def test_each_response_gets_its_own_id(db, anonymous_api):
    first = anonymous_api.get("/api/v1/health")["X-Request-Id"]
    second = anonymous_api.get("/api/v1/health")["X-Request-Id"]
    assert first != second


def test_safe_incoming_id_is_echoed_in_header_and_problem(anonymous_api):
    response = anonymous_api.get("/api/v1/projects", HTTP_X_REQUEST_ID="lb-7f3a9c21e0")
    assert response["X-Request-Id"] == "lb-7f3a9c21e0"
    assert response.json()["request_id"] == "lb-7f3a9c21e0"


@pytest.mark.parametrize(
    "incoming", ["evil\nX-Injected: 1", "y" * 500, "tiny"], ids=["newline", "too long", "short"]
)
def test_unsafe_incoming_id_is_replaced_in_header_and_problem(anonymous_api, incoming):
    response = anonymous_api.get("/api/v1/projects", HTTP_X_REQUEST_ID=incoming)
    assert GENERATED.match(response["X-Request-Id"])
    assert response.json()["request_id"] == response["X-Request-Id"]


def test_unknown_api_path_and_portal_404_carry_an_id(db, anonymous_api):
    assert GENERATED.match(anonymous_api.get("/api/v1/nope")["X-Request-Id"])
    assert GENERATED.match(anonymous_api.get("/no-such-page/")["X-Request-Id"])


def test_current_id_is_only_set_during_the_request(db, anonymous_api):
    assert current_request_id() is None
    anonymous_api.get("/api/v1/health")
    assert current_request_id() is None


def test_log_records_carry_the_current_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "message", None, None)
    token = set_current_request_id("req_logged")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        reset_current_request_id(token)
    assert record.request_id == "req_logged"
    RequestIdFilter().filter(record)
    assert record.request_id == "-"
