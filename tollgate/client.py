"""A small HTTP client for POST /api/v1/verify, with a short cache of hopeless keys."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPSConnection
from urllib.parse import urlparse

# Denials that cannot change for a while: cached so a flood of bad keys stays local.
CACHEABLE_DENIALS = frozenset({"key_malformed", "key_invalid", "key_revoked", "key_expired"})


@dataclass
class GateAnswer:
    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.status == 200 and bool(self.body.get("allowed"))

    @property
    def code(self) -> str:
        return str(self.body.get("code", "gate_error"))


class GateClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 2.0,
        product: str | None = None,
        version: str | None = None,
        denial_cache_seconds: float = 2.0,
    ):
        parsed = urlparse(url.rstrip("/"))
        self._secure = parsed.scheme == "https"
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (443 if self._secure else 80)
        self._path = (parsed.path or "") + "/api/v1/verify"
        self._token = token
        self._timeout = timeout
        self._product, self._version = product, version
        self._denial_cache_seconds = denial_cache_seconds
        self._denials: dict[str, tuple[GateAnswer, float]] = {}
        self._local = threading.local()

    @property
    def product(self) -> str | None:
        return self._product

    @property
    def version(self) -> str | None:
        return self._version

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            factory = HTTPSConnection if self._secure else HTTPConnection
            connection = factory(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def verify(
        self, *, key: str, method: str, path: str, ip: str | None = None, cost: int = 1
    ) -> GateAnswer:
        cached = self._denials.get(key)
        if cached is not None and time.monotonic() - cached[1] < self._denial_cache_seconds:
            return cached[0]
        body = {"key": key, "method": method, "path": path, "cost": cost}
        if ip:
            body["ip"] = ip
        if self._product:
            body["product"] = self._product
        if self._version:
            body["version"] = self._version
        answer = self._post(json.dumps(body).encode())
        if answer.status == 200 and answer.code in CACHEABLE_DENIALS:
            if len(self._denials) > 10_000:
                self._denials.clear()
            self._denials[key] = (answer, time.monotonic())
        return answer

    def _post(self, payload: bytes) -> GateAnswer:
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        for attempt in range(2):  # a kept-alive connection the server closed: retry once
            connection = self._connection()
            try:
                connection.request("POST", self._path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    self._local.connection = None
                return GateAnswer(
                    response.status,
                    json.loads(data or b"{}"),
                    {k: v for k, v in response.getheaders()},
                )
            except (OSError, ValueError):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")
