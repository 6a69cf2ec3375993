"""The delivery engine (HOOK-3, HOOK-4): one attempt of one delivery, the retry schedule,
endpoint auto-disable, and the sweep that hands due deliveries to workers.

Who may attempt a delivery is decided in PostgreSQL, never in the broker: a delivery is
claimed with one conditional UPDATE that sets `lease_until`, so two workers (a duplicate
message, a sweep racing a nudge) can never both attempt it, and a worker that dies mid-attempt
only holds it until its lease expires, when the sweeper hands it to another. Messages in
the broker are hints: losing them (a Redis restart) delays a delivery, never loses it.

Leases also mark queued work. Whoever publishes a message (the nudge after commit, or the
sweeper) first sets `lease_until` to a token instant and sends that token with the message;
until that instant only a holder of the token may claim the delivery, so the sweeper does not
queue it a second time, and if the message is lost the lease simply runs out.
"""

import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import urllib3
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.audit import Actor, audit_record
from portal.notifications import email_on_commit, member_emails
from webhooks import secrets, signing
from webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from webhooks.ssrf import TargetRefused, deadlines, pools, target_check

logger = logging.getLogger(__name__)

# Svix's schedule: the first attempt at once, then these delays (seconds) after each failure;
# 8 attempts over about 28 hours. Each delay gets +-20% jitter.
DEFAULT_RETRY_DELAYS = [5, 300, 1800, 7200, 18000, 36000, 36000]
JITTER = 0.2
RETRY_AFTER_MIN_SECONDS = 5
RETRY_AFTER_MAX_SECONDS = 10 * 3600
RESPONSE_BODY_LIMIT = 20 * 1024
USER_AGENT = "Tollgate-Webhooks/1"
NOTIFY_ROLES = ("owner", "admin")

SUCCEEDED = "succeeded"
RETRYING = "retrying"
FAILED = "failed"
SKIPPED = "skipped"  # not claimable: done, not yet due, or held by another worker
DEFERRED = "deferred"  # its endpoint already has enough attempts in flight here


def _setting(name: str, default):
    return getattr(settings, name, default)


def retry_delays() -> list[float]:
    return list(_setting("WEBHOOKS_RETRY_DELAYS", DEFAULT_RETRY_DELAYS))


def lease_seconds() -> float:
    """How long a worker holds a delivery it attempts; well above the HTTP timeout."""
    return float(_setting("WEBHOOKS_LEASE_SECONDS", 60))


def queue_lease_seconds() -> float:
    """How long a queued message holds its delivery before the sweeper queues it again."""
    return float(_setting("WEBHOOKS_QUEUE_LEASE_SECONDS", 120))


def timeout_seconds() -> float:
    return float(_setting("WEBHOOKS_TIMEOUT_SECONDS", 15))


def token_encode(instant: datetime) -> str:
    return instant.isoformat()


def token_decode(token: str | None) -> datetime | None:
    if not token:
        return None
    try:
        return datetime.fromisoformat(token)
    except ValueError:
        return None


# --- Per-endpoint concurrency in this process ------------------------------------------------
class EndpointSlots:
    """Caps the attempts in flight per endpoint in one worker process, so one slow endpoint
    (each attempt may wait out the 15 s timeout) cannot take every thread: the excess is
    deferred back to the database and the threads serve other endpoints meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    def acquire(self, endpoint_id: str, limit: int) -> bool:
        with self._lock:
            count = self._in_flight.get(endpoint_id, 0)
            if count >= limit:
                return False
            self._in_flight[endpoint_id] = count + 1
            return True

    def release(self, endpoint_id: str) -> None:
        with self._lock:
            count = self._in_flight.get(endpoint_id, 1) - 1
            if count <= 0:
                self._in_flight.pop(endpoint_id, None)
            else:
                self._in_flight[endpoint_id] = count


slots = EndpointSlots()


# --- Publishing: leases for queued messages ----------------------------------------------------
def deliveries_lease_for_queue(
    *, delivery_ids: Iterable[str], now: datetime | None = None
) -> list[tuple[str, str]]:
    """Marks fresh deliveries (no lease yet) as queued; returns (id, token) to publish."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=queue_lease_seconds())
    ids = list(delivery_ids)
    leased = Delivery.objects.filter(
        pk__in=ids, status=Delivery.Status.PENDING, lease_until__isnull=True
    ).update(lease_until=lease_until)
    if not leased:
        return []
    token = token_encode(lease_until)
    if leased == len(ids):
        return [(str(delivery_id), token) for delivery_id in ids]
    held = Delivery.objects.filter(pk__in=ids, lease_until=lease_until).values_list("pk", flat=True)
    return [(str(delivery_id), token) for delivery_id in held]


def deliveries_sweep(
    *,
    enqueue: Callable[[list[tuple[str, str]]], None],
    now: datetime | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
) -> int:
    """Queues every pending delivery that is due and held by nobody (its lease is empty or
    expired: a lost message, a dead worker, a retry whose time has come). Each batch is
    leased for the queue in one statement before it is published, so a sweep running while
    workers are busy, or two sweeps at once, never queue the same delivery twice.
    Returns how many were queued."""
    now = now or timezone.now()
    batch_size = batch_size or int(_setting("WEBHOOKS_SWEEP_BATCH", 500))
    limit = limit or int(_setting("WEBHOOKS_SWEEP_LIMIT", 20000))
    queued = 0
    while queued < limit:
        lease_until = now + timedelta(seconds=queue_lease_seconds())
        with transaction.atomic():
            due = list(
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                .order_by("next_attempt_at")
                .values_list("pk", flat=True)[: min(batch_size, limit - queued)]
            )
            if due:
                Delivery.objects.filter(pk__in=due).update(lease_until=lease_until)
        if not due:
            break
        token = token_encode(lease_until)
        enqueue([(str(delivery_id), token) for delivery_id in due])
        queued += len(due)
        if len(due) < batch_size:
            break
        now = timezone.now()
    return queued


# --- Attempts ---------------------------------------------------------------------------------
def _claim(
    delivery_ids: list[str], *, now: datetime, trigger: str, lease_token: str | None
) -> tuple[list[Delivery], datetime]:
    """Leases the claimable deliveries among `delivery_ids` (one transaction, rows skipped
    if another worker is claiming them right now) and loads them with event and endpoint."""
    lease_until = now + timedelta(seconds=lease_seconds())
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    token = token_decode(lease_token)
    if token is not None:
        free |= Q(lease_until=token)
    claimable = Delivery.objects.filter(pk__in=delivery_ids).filter(free)
    manual = trigger == "manual"
    if not manual:
        claimable = claimable.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
    with transaction.atomic():
        ids = list(
            claimable.select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not ids:
            return [], lease_until
        changes: dict = {"lease_until": lease_until}
        if not manual:
            changes["attempts"] = F("attempts") + 1
        Delivery.objects.filter(pk__in=ids).update(**changes)
    deliveries = list(
        Delivery.objects.select_related("event", "endpoint").filter(pk__in=ids).order_by("pk")
    )
    return deliveries, lease_until


def _secrets_in_force(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    in_force = [secrets.decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        in_force.append(secrets.decrypt(endpoint.previous_secret_encrypted))
    return in_force


def body_bytes(payload: dict) -> bytes:
    """The request body: the event's payload, serialized the same way on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(int(value))
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, RETRY_AFTER_MIN_SECONDS), RETRY_AFTER_MAX_SECONDS)


def next_delay(attempt_number: int, *, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after attempt `attempt_number` (1-based) failed, or
    None when the schedule is exhausted. A receiver's Retry-After (already bounded) wins."""
    delays = retry_delays()
    if attempt_number > len(delays):
        return None
    if retry_after is not None:
        return retry_after
    return delays[attempt_number - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311


class _Response:
    __slots__ = ("body", "error", "retry_after", "status_code")

    def __init__(self, status_code=None, body="", error="", retry_after=None):
        self.status_code = status_code
        self.body = body
        self.error = error
        self.retry_after = retry_after


def _post(target, headers: dict[str, str], body: bytes) -> _Response:
    """One POST to the checked address: no redirects, no retries, bounded wait and body."""
    pool = pools.get(target)
    deadlines.begin(timeout_seconds())
    try:
        result = _post_within_deadline(pool, target, headers, body)
    finally:
        cut = deadlines.end()
    if cut and result.error:
        return _Response(error=f"timeout: no complete answer within {timeout_seconds()} s")
    return result


def _post_within_deadline(pool, target, headers: dict[str, str], body: bytes) -> _Response:
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": target.host_header},
            redirect=False,
            retries=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(total=timeout_seconds()),
            preload_content=False,
        )
    except urllib3.exceptions.NewConnectionError as error:  # (a subclass of the timeout)
        return _Response(error=f"connection_failed: {error}"[:500])
    except urllib3.exceptions.TimeoutError:
        return _Response(error="timeout")
    except urllib3.exceptions.SSLError as error:
        return _Response(error=f"tls_error: {error}"[:500])
    except urllib3.exceptions.HTTPError as error:
        return _Response(error=f"http_error: {error}"[:500])
    try:
        try:
            raw = response.read(RESPONSE_BODY_LIMIT + 1)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raw = b""
            response.close()
            return _Response(
                status_code=response.status,
                error=f"response_read_failed: {error}"[:500],
                retry_after=response.headers.get("Retry-After"),
            )
        if len(raw) > RESPONSE_BODY_LIMIT:
            response.close()  # do not drain an unbounded body to reuse the connection
            raw = raw[:RESPONSE_BODY_LIMIT]
        else:
            response.release_conn()
        return _Response(
            status_code=response.status,
            body=raw.decode("utf-8", errors="replace"),
            retry_after=response.headers.get("Retry-After"),
        )
    except Exception:
        response.close()
        raise


_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _http_executor() -> ThreadPoolExecutor:
    """Threads that only send HTTP (no database), so one worker process has many requests
    in flight while its task threads claim and record in batches."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=int(_setting("WEBHOOKS_HTTP_THREADS", 32)),
                thread_name_prefix="webhook-http",
            )
        return _executor


class _Sent:
    __slots__ = ("delivery", "duration_ms", "headers", "response")

    def __init__(self, delivery, headers, response, duration_ms):
        self.delivery = delivery
        self.headers = headers
        self.response = response
        self.duration_ms = duration_ms


def _send(delivery: Delivery, now: datetime) -> _Sent:
    """Signs and sends one delivery. No database access: this runs on the HTTP threads.
    Never raises: an unexpected error (say, a secret that no longer decrypts after a
    SECRET_KEY change) is a failed attempt like any other, recorded and retried, so the
    delivery cannot loop on its lease forever."""
    endpoint = delivery.endpoint
    headers: dict[str, str] = {}
    started = time.monotonic()
    try:
        body = body_bytes(delivery.event.payload)
        # The signed timestamp is the wall clock at sending, whatever clock the caller passed.
        headers = signing.headers(
            _secrets_in_force(endpoint, now), delivery.event_id, int(time.time()), body
        )
        headers["user-agent"] = USER_AGENT
        try:
            target = target_check(endpoint.url, environment=endpoint.environment)
        except TargetRefused as refusal:
            response = _Response(error=f"{refusal.code}: {refusal.detail}"[:500])
        else:
            response = _post(target, headers, body)
    except Exception as error:
        logger.exception("webhook delivery %s failed before an answer", delivery.pk)
        response = _Response(error=f"internal_error: {type(error).__name__}")
    finally:
        slots.release(str(endpoint.pk))
    return _Sent(delivery, headers, response, int((time.monotonic() - started) * 1000))


def attempt(
    delivery_id: str,
    *,
    trigger: str = "scheduled",
    lease_token: str | None = None,
    now: datetime | None = None,
) -> str:
    """Attempts one delivery if it is claimable; see `attempt_many`."""
    key = str(delivery_id)
    return attempt_many([key], trigger=trigger, lease_token=lease_token, now=now)[key]


def attempt_many(
    delivery_ids: list[str],
    *,
    trigger: str = "scheduled",
    lease_token: str | None = None,
    now: datetime | None = None,
    straggler_seconds: float | None = None,
) -> dict[str, str]:
    """Attempts the claimable deliveries among `delivery_ids` (each to its own endpoint, all
    at once), records every attempt and decides what comes next for each. Runs outside any
    transaction: no HTTP call ever holds a database lock. `trigger="manual"` (a re-delivery
    asked for in the portal) sends whatever the delivery's state and changes it only on
    success. Returns {delivery id: SUCCEEDED | RETRYING | FAILED | SKIPPED | DEFERRED};
    with `straggler_seconds` (workers), attempts still running after that long are left to
    the recorder thread and reported as SKIPPED."""
    now = now or timezone.now()
    outcomes = {str(delivery_id): SKIPPED for delivery_id in delivery_ids}
    deliveries, lease_until = _claim(
        list(outcomes), now=now, trigger=trigger, lease_token=lease_token
    )
    if not deliveries:
        return outcomes
    scheduled = trigger != "manual"
    limit = int(_setting("WEBHOOKS_ENDPOINT_CONCURRENCY", 8))
    disabled, deferred, ready = [], [], []
    for delivery in deliveries:
        if delivery.endpoint.status != WebhookEndpoint.Status.ENABLED and scheduled:
            disabled.append(delivery.pk)
        elif not slots.acquire(str(delivery.endpoint_id), limit):
            deferred.append(delivery.pk)
        else:
            ready.append(delivery)
    mine = Delivery.objects.filter(lease_until=lease_until)
    if disabled:
        mine.filter(pk__in=disabled).update(
            status=Delivery.Status.FAILED,
            lease_until=None,
            attempts=F("attempts") - 1,
            last_error="endpoint_disabled",
            finished_at=now,
        )
        outcomes.update({str(pk): FAILED for pk in disabled})
    if deferred:
        # Back to the database, due a moment from now; the sweeper queues them again.
        release: dict = {"lease_until": None}
        if scheduled:
            release |= {
                "attempts": F("attempts") - 1,
                "next_attempt_at": now + timedelta(seconds=1),
            }
        mine.filter(pk__in=deferred).update(**release)
        outcomes.update({str(pk): DEFERRED for pk in deferred})
    if not ready:
        return outcomes
    if len(ready) == 1 and straggler_seconds is None:
        sent = [_send(ready[0], now)]
        outcomes.update(_record(sent, lease_until, now=now, trigger=trigger))
        return outcomes
    futures = [_http_executor().submit(_send, delivery, now) for delivery in ready]
    # Record what is back within `straggler_seconds`: a slow endpoint in the batch never
    # delays the others' sending, nor their record by more than that. The stragglers are
    # recorded inline (tests, the embedded mode) or, in a worker, by the recorder thread,
    # so the task's thread is free for the next message while a request hangs.
    done, pending = wait(futures, timeout=straggler_seconds or 1.0)
    if done:
        outcomes.update(_record([f.result() for f in done], lease_until, now=now, trigger=trigger))
    if pending and straggler_seconds is None:
        wait(pending)
        outcomes.update(
            _record([f.result() for f in pending], lease_until, now=now, trigger=trigger)
        )
    elif pending:
        for future in pending:
            recorder.follow(future, lease_until=lease_until, now=now, trigger=trigger)
    return outcomes


class _Recorder:
    """One thread per worker process that records attempts which outlived their task's
    wait (a slow endpoint). If the process dies first, the delivery's lease runs out and it
    is attempted again: at least once, never lost."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def follow(self, future, *, lease_until: datetime, now: datetime, trigger: str) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="webhook-recorder", daemon=True
                )
                self._thread.start()
        future.add_done_callback(lambda done: self._queue.put((done, lease_until, now, trigger)))

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < 100:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            close_old_connections()
            groups: dict[tuple, list[_Sent]] = {}
            for future, lease_until, now, trigger in items:
                try:
                    groups.setdefault((lease_until, now, trigger), []).append(future.result())
                except Exception:
                    logger.exception("webhook attempt failed before it could be recorded")
            for (lease_until, now, trigger), sent in groups.items():
                try:
                    _record(sent, lease_until, now=now, trigger=trigger)
                except Exception:
                    logger.exception("could not record %d webhook attempts", len(sent))
            if self._queue.empty():
                connection.close()  # stragglers are rare: hold no connection while idle


recorder = _Recorder()


def _record(sent: list[_Sent], lease_until: datetime, *, now: datetime, trigger: str) -> dict:
    """Writes the attempts of a batch, then each delivery's next state (successes in one
    statement per status code, failures one by one: they are the rare path)."""
    scheduled = trigger != "manual"
    outcomes: dict[str, str] = {}
    # Only what this worker still holds: a delivery whose lease ran out (a request slower than
    # the lease) belongs to another worker now, and one whose endpoint was deleted is gone.
    held = set(
        Delivery.objects.filter(
            pk__in=[item.delivery.pk for item in sent], lease_until=lease_until
        ).values_list("pk", flat=True)
    )
    for item in sent:
        if item.delivery.pk not in held:
            outcomes[str(item.delivery.pk)] = "lease_lost"
    sent = [item for item in sent if item.delivery.pk in held]
    attempts = [
        DeliveryAttempt(
            delivery_id=item.delivery.pk,
            endpoint_id=item.delivery.endpoint_id,
            event_id=item.delivery.event_id,
            attempted_at=now,
            request_headers=item.headers,
            status_code=item.response.status_code,
            # PostgreSQL text cannot hold NUL: a receiver's odd body must not stop the batch.
            response_body=item.response.body.replace("\x00", "\ufffd"),
            duration_ms=item.duration_ms,
            error=_error(item.response)[:500].replace("\x00", "\ufffd"),
            trigger="manual" if trigger == "manual" or item.delivery.manual else "scheduled",
        )
        for item in sent
    ]
    try:
        with transaction.atomic():
            DeliveryAttempt.objects.bulk_create(attempts)
    except DatabaseError:
        # One row the database refuses must not cost the others their record: row by row.
        for row in attempts:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except DatabaseError:
                logger.exception("could not record the attempt of delivery %s", row.delivery_id)
    succeeded: dict[int, list] = {}
    for item in sent:
        code = item.response.status_code
        if code is not None and 200 <= code < 300:
            succeeded.setdefault(code, []).append(item.delivery)
    mine = Delivery.objects.filter(lease_until=lease_until)
    recovered = set()
    for code, deliveries in succeeded.items():
        mine.filter(pk__in=[d.pk for d in deliveries]).update(
            status=Delivery.Status.SUCCEEDED,
            finished_at=now,
            lease_until=None,
            last_status_code=code,
            last_error="",
        )
        for delivery in deliveries:
            outcomes[str(delivery.pk)] = SUCCEEDED
            if delivery.endpoint.failing_since is not None:
                recovered.add(delivery.endpoint_id)
    if recovered:
        WebhookEndpoint.objects.filter(pk__in=recovered).update(failing_since=None)
    for item in sent:
        if str(item.delivery.pk) not in outcomes:
            outcomes[str(item.delivery.pk)] = _record_failure(
                item, lease_until, now=now, scheduled=scheduled
            )
    return outcomes


def _error(response: _Response) -> str:
    if response.error:
        return response.error
    code = response.status_code
    return "" if code is None or 200 <= code < 300 else f"http_status: {code}"


def _record_failure(item: _Sent, lease_until: datetime, *, now: datetime, scheduled: bool) -> str:
    delivery, endpoint, response = item.delivery, item.delivery.endpoint, item.response
    mine = Delivery.objects.filter(pk=delivery.pk, lease_until=lease_until)
    common = {
        "lease_until": None,
        "last_status_code": response.status_code,
        "last_error": _error(response)[:500],
    }
    with transaction.atomic():
        if response.status_code == 410:
            endpoint_disable(
                endpoint_id=endpoint.pk,
                reason="The endpoint answered 410 Gone.",
                now=now,
                notify=False,
            )
            mine.update(status=Delivery.Status.FAILED, finished_at=now, **common)
            return FAILED

        if not scheduled:
            mine.update(**common)
            return FAILED

        disable_after = float(_setting("WEBHOOKS_DISABLE_AFTER_DAYS", 5))
        if endpoint.failing_since is None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
                failing_since=now
            )
        elif now - endpoint.failing_since >= timedelta(days=disable_after):
            endpoint_disable(
                endpoint_id=endpoint.pk,
                reason=f"Every delivery failed for {disable_after:g} days.",
                now=now,
                notify=True,
            )
            mine.update(status=Delivery.Status.FAILED, finished_at=now, **common)
            return FAILED

        delay = next_delay(
            delivery.attempts,
            retry_after=_retry_after_seconds(response.retry_after, now),
        )
        if delay is None:
            mine.update(status=Delivery.Status.FAILED, finished_at=now, **common)
            return FAILED
        mine.update(next_attempt_at=now + timedelta(seconds=delay), **common)
        return RETRYING


# --- Endpoint auto-disable --------------------------------------------------------------------
def endpoint_disable(*, endpoint_id, reason: str, now: datetime, notify: bool) -> bool:
    """Disables an enabled endpoint and fails its pending deliveries (replay can send them
    again once it is fixed); with `notify`, e-mails the org's owners and admins after commit.
    Returns whether this call disabled it (concurrent failures disable it once)."""
    with transaction.atomic():
        changed = WebhookEndpoint.objects.filter(
            pk=endpoint_id, status=WebhookEndpoint.Status.ENABLED
        ).update(
            status=WebhookEndpoint.Status.DISABLED,
            disabled_reason=reason[:200],
            disabled_at=now,
        )
        if not changed:
            return False
        Delivery.objects.filter(endpoint_id=endpoint_id, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.FAILED,
            lease_until=None,
            last_error="endpoint_disabled",
            finished_at=now,
        )
        endpoint = WebhookEndpoint.objects.select_related("organization").get(pk=endpoint_id)
        audit_record(
            actor=Actor.system("webhooks"),
            action="webhook_endpoint.disabled",
            organization=endpoint.organization,
            target=endpoint,
            changes={"reason": reason[:200], "automatic": True},
        )
        if notify:
            _notify_disabled(endpoint)
    logger.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
    return True


def _notify_disabled(endpoint: WebhookEndpoint) -> None:
    email_on_commit(
        member_emails(endpoint.organization_id, NOTIFY_ROLES),
        organization=endpoint.organization,
        subject="Webhook endpoint disabled",
        template="webhooks/email/endpoint_disabled.txt",
        context={"endpoint": endpoint},
    )
