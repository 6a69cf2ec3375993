"""The middleware reports your API's answers to a real Tollgate (pytest-django's live server),
and a slow or absent Tollgate never delays or fails the answers themselves."""

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from devdocs.models import HealthBucket
from keys.models import Endpoint
from tests.tollgate.test_middleware import tollgate  # noqa: F401 - the live-server fixture
from tollgate.client import GateClient
from tollgate.middleware import TollgateASGIMiddleware, TollgateMiddleware
from tollgate.reporter import OutcomeReporter


def answering_view(request):
    """Your API: search is broken (503), everything else works."""
    if request.path.endswith("/search"):
        return HttpResponse("down", status=503)
    return HttpResponse("ok")


def raising_view(request):
    raise RuntimeError("the view broke")


def call(middleware, path, key):
    return middleware(RequestFactory().get(path, HTTP_AUTHORIZATION=f"Bearer {key.raw_key}"))


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def bucket(operation_id):
    endpoint = Endpoint.objects.get(operation_id=operation_id)
    return HealthBucket.objects.filter(endpoint=endpoint, environment="test").first()


@pytest.fixture
def reporter_for(live_server):
    made = []

    def make(token, **options):
        reporter = OutcomeReporter(live_server.url, token, **options)
        made.append(reporter)
        return reporter

    yield make
    for reporter in made:
        reporter.close(timeout=2)


def gate_token(client: GateClient) -> str:
    return client._token


def test_the_middleware_reports_real_outcomes_to_tollgate(tollgate, reporter_for):  # noqa: F811
    client, key = tollgate
    reporter = reporter_for(gate_token(client), flush_seconds=60)  # flushed by hand below
    middleware = TollgateMiddleware(answering_view, client=client, reporter=reporter)
    assert call(middleware, "/v1/documents/1", key).status_code == 200
    assert call(middleware, "/v1/documents/2", key).status_code == 200
    assert call(middleware, "/v1/documents/search", key).status_code == 503
    # A refused call never reached the API: nothing to report.
    assert middleware(RequestFactory().get("/v1/documents/1")).status_code == 401
    assert reporter.pending() == 3
    reporter.flush()
    assert (reporter.sent, reporter.rejected, reporter.dropped) == (3, 0, 0)
    fetched = bucket("getDocument")
    assert (fetched.calls, fetched.errors) == (2, 0)  # a test key: the sandbox's environment
    searched = bucket("searchDocuments")
    assert (searched.calls, searched.errors) == (1, 1)
    assert sum(searched.histogram) == 1


def test_the_background_thread_sends_without_being_asked(tollgate, reporter_for):  # noqa: F811
    client, key = tollgate
    reporter = reporter_for(gate_token(client), flush_seconds=0.2)
    middleware = TollgateMiddleware(answering_view, client=client, reporter=reporter)
    call(middleware, "/v1/documents/1", key)
    assert wait_for(lambda: reporter.sent == 1)
    assert bucket("getDocument").calls == 1


def test_a_full_batch_is_sent_at_once(tollgate, reporter_for):  # noqa: F811
    client, key = tollgate
    reporter = reporter_for(gate_token(client), flush_seconds=600, batch_size=3)
    middleware = TollgateMiddleware(answering_view, client=client, reporter=reporter)
    for number in range(3):
        call(middleware, f"/v1/documents/{number}", key)
    assert wait_for(lambda: (found := bucket("getDocument")) is not None and found.calls == 3)


def test_a_view_that_raises_is_reported_as_an_error(tollgate, reporter_for):  # noqa: F811
    client, key = tollgate
    reporter = reporter_for(gate_token(client), flush_seconds=60)
    middleware = TollgateMiddleware(raising_view, client=client, reporter=reporter)
    with pytest.raises(RuntimeError):
        call(middleware, "/v1/documents/1", key)
    reporter.flush()
    assert bucket("getDocument").errors == 1


def test_the_asgi_middleware_reports_the_status_it_sent(tollgate, reporter_for):  # noqa: F811
    client, key = tollgate
    reporter = reporter_for(gate_token(client), flush_seconds=60)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b"upstream broke"})

    middleware = TollgateASGIMiddleware(
        app, url="http://unused", token="x", client=client, reporter=reporter
    )
    messages = []

    async def send(message):
        messages.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/documents/7",
        "headers": [(b"authorization", f"Bearer {key.raw_key}".encode())],
        "client": ("127.0.0.1", 5000),
    }
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, middleware(scope, receive, send)).result()
    assert messages[0]["status"] == 502
    reporter.flush()
    fetched = bucket("getDocument")
    assert (fetched.calls, fetched.errors) == (1, 1)


# --- Never in the way -----------------------------------------------------------------------
class SilentServer:
    """Accepts connections and never answers: the slowest Tollgate there is."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.connections = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self):
        for connection in self.connections:
            connection.close()
        self.socket.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def test_a_slow_tollgate_never_delays_the_answers(tollgate, silent_server):  # noqa: F811
    client, key = tollgate
    reporter = OutcomeReporter(
        f"http://127.0.0.1:{silent_server.port}", "tg_op_x", flush_seconds=0.01, timeout=3
    )
    middleware = TollgateMiddleware(answering_view, client=client, reporter=reporter)
    call(middleware, "/v1/documents/1", key)  # warm the gate's caches
    assert wait_for(lambda: silent_server.connections, 5)  # the reporter is now stuck sending
    timings = []
    for number in range(5):
        started = time.perf_counter()
        response = call(middleware, f"/v1/documents/{number}", key)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert max(timings) < 1.0, timings  # the stuck report takes 3 s; no call waited for it
    assert reporter.pending() >= 5
    reporter.close(timeout=0)


def test_an_unreachable_tollgate_keeps_a_bounded_buffer_and_counts_drops(db):
    dead = OutcomeReporter(
        "http://127.0.0.1:9", "tg_op_x", flush_seconds=600, batch_size=2, max_buffer=4
    )
    outcome = {"method": "GET", "path": "/v1/documents/1", "status": 200}
    for _ in range(3):
        dead.report(dict(outcome))
    assert dead.flush() is False  # nothing listens: the batch is kept for later
    assert (dead.failed_sends, dead.pending()) == (1, 3)
    for _ in range(3):
        dead.report(dict(outcome))
    assert (dead.pending(), dead.dropped) == (4, 2)  # full: the newest are dropped, counted
    dead.close(timeout=0)


def test_reporting_fails_no_request_even_when_queueing_breaks(tollgate):  # noqa: F811
    client, key = tollgate

    class BrokenBuffer:
        def __len__(self):
            raise RuntimeError("broken")

    reporter = OutcomeReporter("http://127.0.0.1:9", "tg_op_x")
    reporter._buffer = BrokenBuffer()
    middleware = TollgateMiddleware(answering_view, client=client, reporter=reporter)
    assert call(middleware, "/v1/documents/1", key).status_code == 200


def test_a_batch_tollgate_refuses_is_dropped_not_retried(tollgate, reporter_for):  # noqa: F811
    client, key = tollgate
    reporter = reporter_for("tg_op_not_a_real_token", flush_seconds=600)
    middleware = TollgateMiddleware(answering_view, client=client, reporter=reporter)
    call(middleware, "/v1/documents/1", key)
    reporter.flush()
    assert (reporter.dropped, reporter.pending()) == (1, 0)
    assert not HealthBucket.objects.exists()


def test_a_resent_batch_is_not_counted_twice(tollgate, reporter_for):  # noqa: F811
    client, key = tollgate
    reporter = reporter_for(gate_token(client), flush_seconds=600)
    middleware = TollgateMiddleware(answering_view, client=client, reporter=reporter)
    call(middleware, "/v1/documents/1", key)
    batch = reporter._next_batch()
    # The first send arrived but, say, its answer was lost: the retry carries the same key.
    for _ in range(2):
        status, body = reporter._post(*batch)
        assert status == 202, body
    assert bucket("getDocument").calls == 1


def test_the_outcome_names_what_the_gate_matched(tollgate, live_server):  # noqa: F811
    client, key = tollgate
    scoped = GateClient(live_server.url, gate_token(client), product="documents", version="v1")
    reporter = OutcomeReporter(live_server.url, gate_token(client), flush_seconds=600)
    middleware = TollgateMiddleware(answering_view, client=scoped, reporter=reporter)
    call(middleware, "/v1/documents/1", key)
    [outcome] = list(reporter._buffer)
    assert outcome["method"] == "GET" and outcome["path"] == "/v1/documents/1"
    assert (outcome["product"], outcome["version"], outcome["environment"]) == (
        "documents",
        "v1",
        "test",
    )
    assert outcome["status"] == 200 and outcome["duration_ms"] >= 0
    assert outcome["request_id"].startswith("req_") and outcome["at"].endswith("Z")
    reporter.flush()  # and Tollgate takes it as it is
    assert (reporter.sent, reporter.rejected) == (1, 0)
    reporter.close(timeout=0)
