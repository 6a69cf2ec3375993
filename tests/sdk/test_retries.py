"""Retries, backoff and Idempotency-Key reuse, against a tiny local HTTP server.

The app never answers 429 or 503 on the management API on demand (verify reports a rate
limit inside a 200 decision), so a scripted server stands in for a proxy or a loaded node.
The SDK and httpx run unchanged over a real socket; nothing is patched.
"""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tollgate_sdk import APIConnectionError, ConflictError, RateLimitError, ServerError, Tollgate
from tollgate_sdk.errors import parse_retry_after

PROJECT = {"id": "5b0c3a52-8f0e-4d2f-9f57-3f1c2a9d4e10", "name": "P", "description": ""}


@dataclass
class Scripted:
    """Answers in order (status, headers, body); records what each request carried."""

    answers: list[tuple[int, dict[str, str], dict]]
    seen: list[dict] = field(default_factory=list)


def _handler(script: Scripted) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            script.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length),
                }
            )
            status, headers, body = script.answers.pop(0)
            payload = json.dumps(body).encode()
            self.send_response(status)
            content_type = "application/problem+json" if status >= 400 else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def scripted() -> Iterator[tuple[Scripted, str]]:
    script = Scripted(answers=[])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield script, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def rate_limited(retry_after: str | None = "1") -> tuple[int, dict[str, str], dict]:
    headers = {"X-Request-Id": "req_limited"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = {"status": 429, "code": "rate_limited", "detail": "Slow down.", "request_id": "req_1"}
    return 429, headers, body


def test_a_429_is_retried_after_retry_after_with_the_same_idempotency_key(scripted):
    script, url = scripted
    script.answers = [rate_limited("2"), (201, {}, PROJECT)]
    waits: list[float] = []
    client = Tollgate(token="tg_org_test", base_url=url, sleep=waits.append)

    assert client.projects.create(name="P") == PROJECT

    assert waits == [2.0]
    first, second = script.seen
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
    assert first["body"] == second["body"] == b'{"name":"P"}'
    assert first["headers"]["Authorization"] == "Bearer tg_org_test"


def test_the_default_sleep_really_waits_for_retry_after(scripted):
    script, url = scripted
    script.answers = [rate_limited("1"), (200, {}, {"results": [], "next": None})]
    client = Tollgate(token="tg_org_test", base_url=url)

    started = time.monotonic()
    client.projects.list()
    assert time.monotonic() - started >= 1.0
    assert len(script.seen) == 2


def test_a_callers_idempotency_key_is_sent_on_every_attempt(scripted):
    script, url = scripted
    script.answers = [rate_limited("0"), rate_limited("0"), (202, {}, {"accepted": 1})]
    client = Tollgate(token="tg_op_test", base_url=url, sleep=lambda _seconds: None)

    client.usage.ingest([{"id": "e1", "meter": "requests"}], idempotency_key="batch-42")

    assert [seen["headers"]["Idempotency-Key"] for seen in script.seen] == ["batch-42"] * 3


def test_gets_carry_no_idempotency_key(scripted):
    script, url = scripted
    script.answers = [(200, {}, PROJECT)]
    Tollgate(token="tg_org_test", base_url=url).projects.retrieve(PROJECT["id"])
    assert "Idempotency-Key" not in script.seen[0]["headers"]
    assert script.seen[0]["path"] == f"/api/v1/projects/{PROJECT['id']}"


def test_it_gives_up_after_max_retries_with_a_typed_rate_limit_error(scripted):
    script, url = scripted
    script.answers = [rate_limited("3")] * 3
    waits: list[float] = []
    client = Tollgate(token="tg_org_test", base_url=url, max_retries=2, sleep=waits.append)

    with pytest.raises(RateLimitError) as raised:
        client.projects.list()

    assert len(script.seen) == 3  # the first attempt and two retries
    assert waits == [3.0, 3.0]
    error = raised.value
    assert (error.status, error.code, error.request_id) == (429, "rate_limited", "req_1")
    assert error.retry_after == 3.0


def test_a_retry_after_longer_than_allowed_is_raised_at_once(scripted):
    script, url = scripted
    script.answers = [rate_limited("3600")]
    waits: list[float] = []
    client = Tollgate(token="tg_org_test", base_url=url, max_retry_after=60, sleep=waits.append)

    with pytest.raises(RateLimitError):
        client.projects.list()
    assert waits == []
    assert len(script.seen) == 1


def test_without_retry_after_the_backoff_grows_and_is_capped(scripted):
    script, url = scripted
    unavailable = (503, {}, {"status": 503, "code": "unavailable", "detail": "Busy."})
    script.answers = [unavailable] * 6
    waits: list[float] = []
    client = Tollgate(
        token="tg_org_test", base_url=url, max_retries=5, max_backoff=2.0, sleep=waits.append
    )

    with pytest.raises(ServerError) as raised:
        client.projects.list()

    assert raised.value.status == 503
    assert len(waits) == 5
    ceilings = [0.5, 1.0, 2.0, 2.0, 2.0]  # initial 0.5 s doubling, capped at max_backoff
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_idempotency_key_in_use_is_waited_out(scripted):
    script, url = scripted
    in_use = (409, {}, {"status": 409, "code": "idempotency_key_in_use", "detail": "Running."})
    script.answers = [in_use, (201, {}, PROJECT)]
    client = Tollgate(token="tg_org_test", base_url=url, sleep=lambda _seconds: None)

    assert client.projects.create(name="P") == PROJECT
    assert len(script.seen) == 2


def test_other_client_errors_are_not_retried(scripted):
    script, url = scripted
    conflict = (409, {}, {"status": 409, "code": "project_name_taken", "detail": "Taken."})
    script.answers = [conflict]
    client = Tollgate(token="tg_org_test", base_url=url, sleep=lambda _seconds: None)

    with pytest.raises(ConflictError) as raised:
        client.projects.create(name="P")
    assert raised.value.code == "project_name_taken"
    assert len(script.seen) == 1


def test_a_refused_connection_is_retried_then_raised(unused_tcp_port_url):
    waits: list[float] = []
    client = Tollgate(
        token="tg_org_test", base_url=unused_tcp_port_url, max_retries=2, sleep=waits.append
    )
    with pytest.raises(APIConnectionError):
        client.projects.list()
    assert len(waits) == 2


@pytest.fixture
def unused_tcp_port_url() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_accepts_delta_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_accepts_an_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= parse_retry_after(future) <= 30
