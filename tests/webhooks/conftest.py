"""Fixtures for webhook tests: a local receiver that verifies every delivery with the
`standardwebhooks` library, endpoints with real secrets, and events to deliver."""

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks import secrets
from webhooks.models import Delivery, WebhookEndpoint


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # For each secret the receiver knows: did `standardwebhooks` verify the delivery with it?
    verified: dict[str, bool] = field(default_factory=dict)

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """An HTTP server in a thread. Replies come from a queue (`reply(...)`), then from
    `default`; every request is recorded with its verification results."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.secrets: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver._record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                reply = receiver._next_reply()
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Receiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reply(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self.replies.popleft() if self.replies else self.default

    def _record(self, path: str, headers: dict, body: bytes) -> None:
        verified = {}
        for secret in list(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
                verified[secret] = True
            except WebhookVerificationError:
                verified[secret] = False
        with self._lock:
            self.received.append(Received(path, headers, body, verified))

    def event_ids(self) -> list[str]:
        with self._lock:
            return [item.headers.get("webhook-id") for item in self.received]


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    """Tests deliver to a receiver on 127.0.0.1: private targets allowed unless a test says
    otherwise. Pools are per address, so none outlives its test's receiver."""
    from webhooks.ssrf import pools

    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_TIMEOUT_SECONDS = 5.0
    yield
    pools.clear()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def make_endpoint(org):
    def make(url: str, *, secret: str | None = None, **fields) -> WebhookEndpoint:
        secret = secret or secrets.new_secret()
        endpoint = WebhookEndpoint.objects.create(
            organization=org, url=url, secret_encrypted=secrets.encrypt(secret), **fields
        )
        endpoint.secret = secret  # the plain secret, for the test's receiver
        return endpoint

    return make


@pytest.fixture
def endpoint(make_endpoint, receiver):
    """A live endpoint at the receiver, which knows its secret."""
    made = make_endpoint(receiver.url)
    receiver.secrets.append(made.secret)
    return made


@pytest.fixture
def emit_ping(org):
    """Emits a `ping` event for `org`; returns its deliveries (one per matching endpoint)."""
    from webhooks.services import emit

    def emit_one(message: str = "hello", *, environment: str = "live") -> list[Delivery]:
        event = emit(
            organization=org, type="ping", data={"message": message}, environment=environment
        )
        return list(Delivery.objects.filter(event=event).order_by("created_at"))

    return emit_one
