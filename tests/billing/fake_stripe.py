"""A local fake of the few Stripe API endpoints Tollgate calls, as a real HTTP server.

The official `stripe` library talks to it unpatched (STRIPE_API_BASE points at it), so the
tests exercise the same requests, form encoding, idempotency keys and error handling as
production. It keeps its objects in memory; `reset()` empties them between tests.

Payment methods behave like Stripe's test cards:
- `pm_card_visa` (or any other id): the charge succeeds;
- `pm_card_chargeDeclined`: 402 card_error, code card_declined (decline_code generic_decline);
- `pm_card_insufficientFunds`: 402 card_error, decline_code insufficient_funds;
- `pm_processing` (fake-only): the PaymentIntent stays `processing` until a webhook says how
  it ended, like a bank debit.
`outage = True` answers every request with 500 api_error; `lost_responses = n` processes the
next n POSTs but answers them with 500, as when a response is lost on the network;
`charge_delay` (seconds) slows PaymentIntent creation down, to hold a charge in flight while
a test races it.

Transfers to connected accounts (marketplace payouts) land in `transfers`: any `acct_…`
destination exists but those starting `acct_missing` (MISSING_ACCOUNT), which answer Stripe's
404 resource_missing.
"""

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

API_KEY = "sk_test_fake_tollgate"
WEBHOOK_SECRET = "whsec_test_tollgate"
DECLINED = "pm_card_chargeDeclined"
INSUFFICIENT_FUNDS = "pm_card_insufficientFunds"
PROCESSING = "pm_processing"
GOOD_CARD = "pm_card_visa"
MISSING_ACCOUNT = "acct_missing"  # a prefix: every destination starting so is unknown


def parse_form(body: str) -> dict:
    """Stripe's form encoding back into nested values: `metadata[a]=1` -> {"metadata":
    {"a": "1"}}, `payment_method_types[0]=card` -> {"payment_method_types": ["card"]}."""
    result: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = result
        for part, following in itertools.pairwise(parts):
            node = node.setdefault(part, [] if following.isdigit() else {})
            if isinstance(node, list):
                index = int(following)
                while len(node) <= index:
                    node.append(None)
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return result


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload`, as Stripe computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.{payload.decode()}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(event_type: str, data_object: dict, event_id: str | None = None) -> dict:
    """A Stripe event envelope around `data_object`."""
    return {
        "id": event_id or f"evt_{next(_event_ids)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": data_object},
    }


_event_ids = itertools.count(1)


class StripeApiError(Exception):
    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body


def _error(status: int, error_type: str, message: str, **extra) -> StripeApiError:
    return StripeApiError(status, {"error": {"type": error_type, "message": message, **extra}})


class FakeStripe:
    def __init__(self):
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.api_key = API_KEY
        self.reset()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict] = []
            self.customers: dict[str, dict] = {}
            self.sessions: dict[str, dict] = {}
            self.setup_intents: dict[str, dict] = {}
            self.payment_intents: dict[str, dict] = {}
            self.refunds: dict[str, dict] = {}
            self.transfers: dict[str, dict] = {}
            self.idempotent: dict[str, tuple[dict, int, dict]] = {}
            self.outage = False
            self.lost_responses = 0  # POSTs processed, then answered 500 (a lost response)
            # The platform's available balance in minor units for transfers (None: plenty).
            self.platform_balance: int | None = None
            self.charge_delay = 0.0
            self._ids = itertools.count(1)

    # --- what a customer does on Stripe's pages -------------------------------------------
    def complete_checkout(self, session_id: str, payment_method: str = GOOD_CARD) -> dict:
        """The customer enters a card on the Checkout page: the session completes and its
        SetupIntent succeeds with `payment_method`. Returns the SetupIntent."""
        with self.lock:
            session = self.sessions[session_id]
            session["status"] = "complete"
            intent = self.setup_intents[session["setup_intent"]]
            intent["status"] = "succeeded"
            intent["payment_method"] = payment_method
            return dict(intent)

    def charges(self) -> list[dict]:
        """The PaymentIntents created, oldest first."""
        return [
            request["params"]
            for request in self.requests
            if request["method"] == "POST" and request["path"] == "/v1/payment_intents"
        ]

    def transfer_requests(self) -> list[dict]:
        """Every POST /v1/transfers as sent (params and idempotency key), oldest first,
        replays included: `transfers` holds what was actually made."""
        return [
            request
            for request in self.requests
            if request["method"] == "POST" and request["path"] == "/v1/transfers"
        ]

    # --- HTTP ------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        split = urlsplit(handler.path)
        params = parse_form(body if method == "POST" else split.query)
        idempotency_key = handler.headers.get("Idempotency-Key")
        if self.charge_delay and split.path == "/v1/payment_intents":
            time.sleep(self.charge_delay)
        with self.lock:
            self.requests.append(
                {
                    "method": method,
                    "path": split.path,
                    "params": params,
                    "idempotency_key": idempotency_key,
                }
            )
            try:
                if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
                    raise _error(401, "invalid_request_error", "Invalid API Key provided.")
                if self.outage:
                    raise _error(500, "api_error", "Something went wrong on Stripe's end.")
                replay_key = f"{split.path}:{idempotency_key}" if idempotency_key else None
                if method == "POST" and replay_key in self.idempotent:
                    original, status, response = self.idempotent[replay_key]
                    if original != params:
                        raise _error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        )
                else:
                    try:
                        status, response = 200, self._route(method, split.path, params)
                    except StripeApiError as error:
                        if method != "POST" or error.status >= 500 or not replay_key:
                            raise
                        # Stripe replays a stored error response too (a 402 stays a 402).
                        self.idempotent[replay_key] = (params, error.status, error.body)
                        raise
                    if replay_key and method == "POST":
                        self.idempotent[replay_key] = (params, status, response)
                if method == "POST" and self.lost_responses > 0:
                    self.lost_responses -= 1
                    raise _error(500, "api_error", "The response was lost on its way back.")
            except StripeApiError as error:
                status, response = error.status, error.body
        payload = json.dumps(response).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Request-Id", f"req_{next(self._ids)}")
        handler.end_headers()
        handler.wfile.write(payload)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}"

    def _route(self, method: str, path: str, params: dict) -> dict:
        routes = [
            ("POST", r"/v1/customers", self._customer_create),
            ("POST", r"/v1/checkout/sessions", self._session_create),
            ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", self._session_retrieve),
            ("GET", r"/v1/setup_intents/(?P<id>[^/]+)", self._setup_intent_retrieve),
            ("POST", r"/v1/payment_intents", self._payment_intent_create),
            ("POST", r"/v1/refunds", self._refund_create),
            ("POST", r"/v1/transfers", self._transfer_create),
            ("GET", r"/v1/transfers", self._transfer_list),
            ("GET", r"/v1/transfers/(?P<id>[^/]+)", self._transfer_retrieve),
        ]
        for route_method, pattern, view in routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                return view(params, **match.groupdict())
        raise _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    @staticmethod
    def _missing(kind: str, object_id: str) -> StripeApiError:
        return _error(
            404,
            "invalid_request_error",
            f"No such {kind}: '{object_id}'",
            code="resource_missing",
            param="id",
        )

    def _customer_create(self, params: dict) -> dict:
        customer = {
            "id": self._new_id("cus"),
            "object": "customer",
            "name": params.get("name"),
            "email": params.get("email"),
            "metadata": params.get("metadata", {}),
        }
        self.customers[customer["id"]] = customer
        return customer

    def _session_create(self, params: dict) -> dict:
        if params.get("mode") != "setup":
            raise _error(400, "invalid_request_error", "Only setup mode is faked.", param="mode")
        if params.get("customer") not in self.customers:
            raise self._missing("customer", params.get("customer", ""))
        for field in ("success_url", "cancel_url"):
            if not params.get(field):
                raise _error(400, "invalid_request_error", f"Missing {field}.", param=field)
        intent = {
            "id": self._new_id("seti"),
            "object": "setup_intent",
            "status": "requires_payment_method",
            "customer": params["customer"],
            "payment_method": None,
            "usage": "off_session",
            "metadata": (params.get("setup_intent_data") or {}).get("metadata", {}),
        }
        self.setup_intents[intent["id"]] = intent
        session_id = self._new_id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "setup",
            "status": "open",
            "customer": params["customer"],
            "setup_intent": intent["id"],
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "metadata": params.get("metadata", {}),
        }
        self.sessions[session_id] = session
        return session

    def _session_retrieve(self, params: dict, id: str) -> dict:
        if id not in self.sessions:
            raise self._missing("checkout.session", id)
        return self.sessions[id]

    def _setup_intent_retrieve(self, params: dict, id: str) -> dict:
        if id not in self.setup_intents:
            raise self._missing("setup_intent", id)
        return self.setup_intents[id]

    def _payment_intent_create(self, params: dict) -> dict:
        for field in ("amount", "currency", "customer", "payment_method"):
            if not params.get(field):
                raise _error(400, "invalid_request_error", f"Missing {field}.", param=field)
        if params["customer"] not in self.customers:
            raise self._missing("customer", params["customer"])
        amount = int(params["amount"])
        if amount < 1:
            raise _error(400, "invalid_request_error", "Amount too small.", param="amount")
        intent = {
            "id": self._new_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": params["currency"],
            "customer": params["customer"],
            "payment_method": params["payment_method"],
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
            "status": "succeeded",
            "last_payment_error": None,
        }
        self.payment_intents[intent["id"]] = intent
        decline = {DECLINED: "generic_decline", INSUFFICIENT_FUNDS: "insufficient_funds"}
        if params["payment_method"] in decline:
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": decline[params["payment_method"]],
                "message": "Your card was declined.",
            }
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = error
            raise StripeApiError(402, {"error": {**error, "payment_intent": dict(intent)}})
        if params["payment_method"] == PROCESSING:
            intent["status"] = "processing"
        else:
            intent["amount_received"] = amount
        return intent

    def _refund_create(self, params: dict) -> dict:
        intent = self.payment_intents.get(params.get("payment_intent", ""))
        if intent is None or intent["status"] != "succeeded":
            raise self._missing("payment_intent", params.get("payment_intent", ""))
        amount = int(params.get("amount") or intent["amount_received"])
        if amount > intent["amount_received"]:
            raise _error(400, "invalid_request_error", "Refund exceeds the charge.")
        refund = {
            "id": self._new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent.get("currency", "usd"),
            "payment_intent": intent["id"],
            "metadata": params.get("metadata", {}),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return refund

    def _transfer_create(self, params: dict) -> dict:
        for field in ("amount", "currency", "destination"):
            if not params.get(field):
                raise _error(
                    400, "invalid_request_error", f"Missing required param: {field}.", param=field
                )
        if not params["amount"].isdigit() or int(params["amount"]) < 1:
            raise _error(
                400,
                "invalid_request_error",
                "This value must be greater than or equal to 1.",
                param="amount",
            )
        if not re.fullmatch(r"[a-z]{3}", params["currency"]):
            raise _error(
                400,
                "invalid_request_error",
                "Invalid currency: " + params["currency"],
                param="currency",
            )
        destination = params["destination"]
        if not destination.startswith("acct_") or destination.startswith(MISSING_ACCOUNT):
            raise _error(
                404,
                "invalid_request_error",
                f"No such destination: '{destination}'",
                code="resource_missing",
                param="destination",
            )
        if self.platform_balance is not None and int(params["amount"]) > self.platform_balance:
            raise _error(
                400,
                "invalid_request_error",
                "You have insufficient available funds in your Stripe account.",
                code="balance_insufficient",
            )
        transfer = {
            "id": self._new_id("tr"),
            "object": "transfer",
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "destination": destination,
            "transfer_group": params.get("transfer_group"),
            "metadata": params.get("metadata", {}),
            "reversed": False,
        }
        self.transfers[transfer["id"]] = transfer
        return transfer

    def _transfer_list(self, params: dict) -> dict:
        group = params.get("transfer_group")
        made = [t for t in self.transfers.values() if group is None or t["transfer_group"] == group]
        limit = int(params.get("limit") or 10)
        return {
            "object": "list",
            "url": "/v1/transfers",
            "has_more": len(made) > limit,
            "data": list(reversed(made))[:limit],  # newest first, as Stripe lists
        }

    def _transfer_retrieve(self, params: dict, id: str) -> dict:
        if id not in self.transfers:
            raise self._missing("transfer", id)
        return self.transfers[id]
