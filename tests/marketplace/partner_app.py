"""A tiny partner app, served on 127.0.0.1 by the tests: what a partner builds to be
installed. `/install` starts the authorization-code flow with PKCE (it keeps the verifier),
`/callback` checks the state and exchanges the code at Tollgate's token endpoint, server to
server, with the client secret. It speaks plain HTTP with the standard library, as any
partner's backend would, so the flow the browser sees is the real one end to end."""

import base64
import hashlib
import html
import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PartnerApp:
    def __init__(self, tollgate_url: str, scope: str = "read write") -> None:
        self.tollgate_url = tollgate_url.rstrip("/")
        self.scope = scope
        self.client_id = ""
        self.client_secret = ""
        self.pending: dict[str, str] = {}  # state → PKCE verifier
        self.tokens: list[dict] = []
        self.errors: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def install_url(self) -> str:
        return f"{self.url}/install"

    @property
    def redirect_uri(self) -> str:
        return f"{self.url}/callback"

    def start(self) -> "PartnerApp":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def authorize_location(self) -> str:
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        state = secrets.token_urlsafe(16)
        self.pending[state] = verifier
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scope,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.tollgate_url}/o/authorize/?{query}"

    def exchange(self, code: str, state: str) -> dict:
        verifier = self.pending.pop(state)  # an unknown state is a forged callback
        body = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            }
        ).encode()
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        request = urllib.request.Request(
            f"{self.tollgate_url}/o/token/",
            data=body,
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def _handler(self):
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def _page(self, status: int, text: str) -> None:
                body = f"<!doctype html><title>DocSync</title><p id=result>{html.escape(text)}"
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/install":
                    self.send_response(302)
                    self.send_header("Location", app.authorize_location())
                    self.end_headers()
                elif url.path == "/callback" and "code" in params:
                    try:
                        tokens = app.exchange(params["code"], params.get("state", ""))
                    except (KeyError, urllib.error.HTTPError) as error:
                        app.errors.append(repr(error))
                        self._page(400, f"Install failed: {error!r}")
                        return
                    app.tokens.append(tokens)
                    self._page(200, f"Connected to Tollgate with scope: {tokens['scope']}")
                elif url.path == "/callback":
                    app.errors.append(params.get("error", "no code"))
                    self._page(400, f"Install cancelled: {params.get('error', '')}")
                else:
                    self._page(404, "Not found")

        return Handler
