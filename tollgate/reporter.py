"""Reports what your API answered to the calls the gate let through (status page, DOCS-6).

`report()` only appends to a bounded in-memory buffer: it never blocks on the network and
never raises, so a slow or absent Tollgate can neither delay nor fail your API's answers.
A background thread sends the buffer to `POST /api/v1/gate/outcomes` every
`flush_seconds`, or as soon as it holds `batch_size` outcomes. A batch that could not be
sent (Tollgate unreachable, 5xx, 429) is kept and sent again, with the same
`Idempotency-Key` so a retry of a batch that did arrive is not counted twice; while it
waits, new outcomes queue up to `max_buffer`, and past that they are dropped and counted
in `dropped`. A batch Tollgate refuses outright (4xx: bad token, bad body) is dropped and
counted: sending it again would not help.
"""

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from http.client import HTTPConnection, HTTPSConnection
from urllib.parse import urlparse

logger = logging.getLogger("tollgate.reporter")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OutcomeReporter:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        flush_seconds: float = 5.0,
        batch_size: int = 500,
        max_buffer: int = 10_000,
        timeout: float = 5.0,
        retry_seconds: float = 5.0,
    ):
        parsed = urlparse(url.rstrip("/"))
        self._secure = parsed.scheme == "https"
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (443 if self._secure else 80)
        self._path = (parsed.path or "") + "/api/v1/gate/outcomes"
        self._token = token
        self.flush_seconds = flush_seconds
        self.batch_size = max(1, min(batch_size, 1000))  # the endpoint takes 1,000 at most
        self.max_buffer = max(max_buffer, self.batch_size)
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._buffer: deque[dict] = deque()
        self._pending: tuple[str, list[dict]] | None = None  # a batch waiting to be re-sent
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one batch in flight at a time
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        # Counters, for your own metrics.
        self.sent = 0  # outcomes Tollgate accepted
        self.rejected = 0  # outcomes Tollgate refused one by one (see its `errors`)
        self.dropped = 0  # outcomes never delivered: buffer full, or a batch refused whole
        self.failed_sends = 0  # attempts that did not get through (retried later)

    # --- called on the request path: must stay cheap and must not raise ----------------
    def report(self, outcome: dict) -> None:
        try:
            with self._lock:
                waiting = len(self._buffer) + (len(self._pending[1]) if self._pending else 0)
                if waiting >= self.max_buffer:
                    self.dropped += 1
                    return
                self._buffer.append(outcome)
                full = len(self._buffer) >= self.batch_size
            self._ensure_thread()
            if full:
                self._wake.set()
        except Exception:
            logger.exception("tollgate: could not queue an outcome")

    def _ensure_thread(self) -> None:
        # Started lazily and again after a fork (gunicorn --preload): threads do not survive it.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="tollgate-outcome-reporter", daemon=True
            )
            self._thread.start()

    # --- the background thread ---------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                while self.flush() and not self._stopping.is_set():
                    pass  # keep sending while full batches are waiting
            except Exception:
                logger.exception("tollgate: outcome reporter failed")
            if self._pending is not None:
                self._stopping.wait(self.retry_seconds)

    def _next_batch(self) -> tuple[str, list[dict]] | None:
        with self._lock:
            if self._pending is not None:
                batch, self._pending = self._pending, None
                return batch
            if not self._buffer:
                return None
            items = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
            return uuid.uuid4().hex, items

    def flush(self) -> bool:
        """Send one batch now; True if it went through and more are waiting. Used by the
        thread, and by tests and shutdown hooks that want the buffer out at once."""
        with self._send_lock:
            batch = self._next_batch()
            if batch is None:
                return False
            key, items = batch
            try:
                status, body = self._post(key, items)
            except (OSError, ValueError) as error:
                self._keep(batch)
                logger.warning("tollgate: could not report %d outcomes: %s", len(items), error)
                return False
            if status == 202:
                self.sent += int(body.get("accepted", 0))
                self.rejected += int(body.get("rejected", 0))
            elif status >= 500 or status in (408, 409, 429):
                self._keep(batch)  # worth another try, with the same Idempotency-Key
                return False
            else:
                with self._lock:
                    self.dropped += len(items)
                logger.warning(
                    "tollgate: outcomes refused (%s %s); %d dropped",
                    status,
                    body.get("code"),
                    len(items),
                )
            with self._lock:
                return len(self._buffer) >= self.batch_size

    def _keep(self, batch: tuple[str, list[dict]]) -> None:
        self.failed_sends += 1
        with self._lock:
            self._pending = batch

    def _post(self, idempotency_key: str, items: list[dict]) -> tuple[int, dict]:
        factory = HTTPSConnection if self._secure else HTTPConnection
        connection = factory(self._host, self._port, timeout=self.timeout)
        try:
            connection.request(
                "POST",
                self._path,
                body=json.dumps({"outcomes": items}).encode(),
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key,
                },
            )
            response = connection.getresponse()
            data = response.read()
            try:
                body = json.loads(data or b"{}")
            except ValueError:
                body = {}
            return response.status, body if isinstance(body, dict) else {}
        finally:
            connection.close()

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer) + (len(self._pending[1]) if self._pending else 0)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is buffered (within `timeout`) and stop the thread."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0))
        while self.pending() and time.monotonic() < deadline:
            before = self.pending()
            self.flush()
            if self.pending() >= before:
                break
