"""The delivery engine: claim, sign, send, record, retry on Svix's schedule, disable."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import MembershipFactory
from tests.webhooks.conftest import Reply
from webhooks import secrets
from webhooks.delivery import (
    DEFAULT_RETRY_DELAYS,
    DEFERRED,
    FAILED,
    RETRYING,
    SKIPPED,
    SUCCEEDED,
    attempt,
    deliveries_lease_for_queue,
    deliveries_sweep,
    slots,
)
from webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint

pytestmark = pytest.mark.django_db


def refreshed(delivery: Delivery) -> Delivery:
    return Delivery.objects.get(pk=delivery.pk)


def test_delivery_is_signed_so_standardwebhooks_verifies_it(endpoint, receiver, emit_ping):
    [delivery] = emit_ping("hi")

    assert attempt(delivery.pk) == SUCCEEDED

    [received] = receiver.received
    assert received.verified == {endpoint.secret: True}
    assert received.headers["webhook-id"] == delivery.event_id
    assert received.headers["content-type"] == "application/json"
    assert received.payload["data"] == {"message": "hi"}
    assert received.payload["id"] == delivery.event_id
    delivery = refreshed(delivery)
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert delivery.attempts == 1 and delivery.lease_until is None
    [logged] = DeliveryAttempt.objects.filter(delivery=delivery)
    assert logged.status_code == 200 and logged.response_body == "ok"
    assert logged.request_headers["webhook-id"] == delivery.event_id
    assert logged.trigger == "scheduled"


def test_body_is_the_same_bytes_and_id_on_every_attempt(endpoint, receiver, emit_ping):
    receiver.reply(Reply(status=500))
    [delivery] = emit_ping()

    assert attempt(delivery.pk) == RETRYING
    later = refreshed(delivery).next_attempt_at
    assert attempt(delivery.pk, now=later) == SUCCEEDED

    first, second = receiver.received
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert all(item.verified[endpoint.secret] for item in receiver.received)


def test_both_secrets_sign_during_a_rotation_and_only_the_new_one_after(
    endpoint, receiver, emit_ping
):
    old_secret = endpoint.secret
    new_secret = secrets.new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.secret_encrypted = secrets.encrypt(new_secret)
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(hours=24)
    endpoint.save()
    receiver.secrets.append(new_secret)

    [during] = emit_ping("during")
    assert attempt(during.pk) == SUCCEEDED
    received = receiver.received[-1]
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    # A receiver still on the old secret and one already on the new both verify it.
    assert received.verified == {old_secret: True, new_secret: True}

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    [after] = emit_ping("after")
    assert attempt(after.pk) == SUCCEEDED
    received = receiver.received[-1]
    assert len(received.headers["webhook-signature"].split(" ")) == 1
    assert received.verified == {old_secret: False, new_secret: True}


def test_receiver_down_for_the_first_attempts_gets_the_event_later(endpoint, receiver, emit_ping):
    receiver.reply(Reply(status=503), Reply(status=502), Reply(status=500))
    [delivery] = emit_ping()
    now = timezone.now()

    for number, expected_delay in enumerate(DEFAULT_RETRY_DELAYS[:3], start=1):
        assert attempt(delivery.pk, now=now) == RETRYING
        delivery = refreshed(delivery)
        assert delivery.attempts == number
        delay = (delivery.next_attempt_at - now).total_seconds()
        assert expected_delay * 0.8 <= delay <= expected_delay * 1.2  # +-20% jitter
        # Not due yet: nobody may attempt it early.
        assert attempt(delivery.pk, now=now + timedelta(seconds=delay - 1)) == SKIPPED
        now = delivery.next_attempt_at

    assert attempt(delivery.pk, now=now) == SUCCEEDED
    assert refreshed(delivery).status == Delivery.Status.SUCCEEDED
    assert [item.status_code for item in DeliveryAttempt.objects.order_by("attempted_at")] == [
        503,
        502,
        500,
        200,
    ]
    assert len(set(receiver.event_ids())) == 1
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


def test_delivery_fails_when_the_schedule_is_exhausted(endpoint, receiver, emit_ping):
    receiver.default = Reply(status=500)
    [delivery] = emit_ping()
    now = timezone.now()
    outcomes = []
    for _ in range(len(DEFAULT_RETRY_DELAYS) + 1):
        outcomes.append(attempt(delivery.pk, now=now))
        now = refreshed(delivery).next_attempt_at

    assert outcomes == [RETRYING] * len(DEFAULT_RETRY_DELAYS) + [FAILED]
    delivery = refreshed(delivery)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 8 and delivery.finished_at is not None
    assert delivery.last_status_code == 500
    assert attempt(delivery.pk, now=now + timedelta(days=1)) == SKIPPED


def test_gone_disables_the_endpoint_and_fails_its_pending_deliveries(endpoint, receiver, emit_ping):
    receiver.reply(Reply(status=410))
    [first] = emit_ping("one")
    [second] = emit_ping("two")

    assert attempt(first.pk) == FAILED

    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED
    assert "410" in endpoint.disabled_reason
    assert refreshed(second).status == Delivery.Status.FAILED
    assert attempt(second.pk) == SKIPPED
    assert len(receiver.received) == 1


def test_disabled_endpoint_gets_no_attempts(endpoint, receiver, emit_ping):
    [delivery] = emit_ping()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(status="disabled")

    assert attempt(delivery.pk) == FAILED
    assert receiver.received == []
    assert refreshed(delivery).last_error == "endpoint_disabled"


def test_endpoint_failing_for_five_days_is_disabled_and_owners_and_admins_are_told(
    org, endpoint, receiver, emit_ping, mailoutbox, django_capture_on_commit_callbacks
):
    owner = MembershipFactory(organization=org, role="owner").user
    admin = MembershipFactory(organization=org, role="admin").user
    MembershipFactory(organization=org, role="developer")
    receiver.default = Reply(status=500)
    [delivery] = emit_ping()
    start = timezone.now()
    assert attempt(delivery.pk, now=start) == RETRYING
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since == start

    [late] = emit_ping("four days later")
    assert attempt(late.pk, now=start + timedelta(days=4)) == RETRYING
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).status == "enabled"

    [last] = emit_ping("five days later")
    with django_capture_on_commit_callbacks(execute=True):
        assert attempt(last.pk, now=start + timedelta(days=5)) == FAILED

    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED
    assert refreshed(late).status == Delivery.Status.FAILED
    [mail] = mailoutbox
    assert sorted(mail.to) == sorted([owner.email, admin.email])
    assert endpoint.url in mail.body and "5" in mail.body
    from portal.models import AuditLogEntry

    entry = AuditLogEntry.objects.get(action="webhook_endpoint.disabled")
    assert entry.organization_id == org.id and entry.changes["automatic"] is True


def test_success_clears_failing_since(endpoint, receiver, emit_ping):
    receiver.reply(Reply(status=500))
    [delivery] = emit_ping()
    attempt(delivery.pk)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is not None
    attempt(delivery.pk, now=refreshed(delivery).next_attempt_at)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


@pytest.mark.parametrize(
    ("header", "expected_seconds"),
    [("120", 120), ("1", 5), ("999999", 36000)],
)
def test_retry_after_is_honoured_within_bounds(
    endpoint, receiver, emit_ping, header, expected_seconds
):
    receiver.reply(Reply(status=429, headers={"Retry-After": header}))
    [delivery] = emit_ping()
    now = timezone.now()

    assert attempt(delivery.pk, now=now) == RETRYING
    assert refreshed(delivery).next_attempt_at == now + timedelta(seconds=expected_seconds)


def test_retry_after_as_an_http_date(endpoint, receiver, emit_ping):
    from email.utils import format_datetime

    [delivery] = emit_ping()
    now = (timezone.now() + timedelta(seconds=1)).replace(microsecond=0)
    receiver.reply(
        Reply(status=503, headers={"Retry-After": format_datetime(now + timedelta(minutes=10))})
    )
    attempt(delivery.pk, now=now)
    assert refreshed(delivery).next_attempt_at == now + timedelta(minutes=10)


def test_redirects_are_not_followed(endpoint, receiver, emit_ping):
    receiver.reply(Reply(status=302, headers={"Location": receiver.url + "/elsewhere"}))
    [delivery] = emit_ping()

    assert attempt(delivery.pk) == RETRYING
    assert [item.path for item in receiver.received] == ["/hooks"]
    assert refreshed(delivery).last_status_code == 302


def test_a_slow_endpoint_times_out_and_is_retried(settings, endpoint, receiver, emit_ping):
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.3
    receiver.reply(Reply(delay=1.0))
    [delivery] = emit_ping()

    assert attempt(delivery.pk) == RETRYING
    [logged] = DeliveryAttempt.objects.all()
    # urllib3's own read timeout ("timeout") or the delivery deadline cutting the socket
    # first ("timeout: no complete answer within ..."): which wins depends on the machine.
    assert logged.error.startswith("timeout") and logged.status_code is None


def test_an_unreachable_endpoint_is_a_failed_attempt(make_endpoint, emit_ping):
    from tests.webhooks.test_ssrf import closed_port

    make_endpoint(f"http://127.0.0.1:{closed_port()}/")
    [delivery] = emit_ping()
    assert attempt(delivery.pk) == RETRYING
    assert DeliveryAttempt.objects.get().error.startswith("connection_failed")


def test_only_the_first_20_kb_of_a_response_are_kept(endpoint, receiver, emit_ping):
    receiver.reply(Reply(body=b"x" * 50_000))
    [delivery] = emit_ping()
    assert attempt(delivery.pk) == SUCCEEDED
    assert len(DeliveryAttempt.objects.get().response_body) == 20 * 1024


def test_a_delivery_held_by_a_worker_cannot_be_claimed_again(endpoint, receiver, emit_ping):
    [delivery] = emit_ping()
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=now + timedelta(seconds=30))

    assert attempt(delivery.pk, now=now) == SKIPPED
    # Once the lease has run out (the worker died), another may attempt it.
    assert attempt(delivery.pk, now=now + timedelta(seconds=31)) == SUCCEEDED
    assert refreshed(delivery).attempts == 1


def test_a_queued_message_claims_with_its_token_and_only_once(endpoint, receiver, emit_ping):
    [delivery] = emit_ping()
    [(delivery_id, token)] = deliveries_lease_for_queue(delivery_ids=[str(delivery.pk)])

    assert attempt(delivery_id) == SKIPPED  # a message without the token
    assert attempt(delivery_id, lease_token=token) == SUCCEEDED
    assert attempt(delivery_id, lease_token=token) == SKIPPED  # a duplicate message
    assert len(receiver.received) == 1


def test_sweep_queues_each_due_delivery_once_until_its_lease_runs_out(
    settings, endpoint, receiver, emit_ping
):
    settings.WEBHOOKS_QUEUE_LEASE_SECONDS = 60
    first = emit_ping("a")[0]
    second = emit_ping("b")[0]
    Delivery.objects.filter(pk=second.pk).update(
        next_attempt_at=timezone.now() + timedelta(seconds=65)
    )
    queued: list[tuple[str, str]] = []
    now = timezone.now()

    assert deliveries_sweep(enqueue=queued.extend, now=now) == 1
    assert deliveries_sweep(enqueue=queued.extend, now=now + timedelta(seconds=5)) == 0
    assert [item[0] for item in queued] == [str(first.pk)]
    # The message was lost (say, a Redis restart): after the queue lease, it is queued again.
    later = now + timedelta(seconds=61)
    assert deliveries_sweep(enqueue=queued.extend, now=later) == 1
    # And the retry that came due is queued too.
    assert deliveries_sweep(enqueue=queued.extend, now=now + timedelta(seconds=70)) == 1
    assert [item[0] for item in queued][-1] == str(second.pk)
    # The first message's stale token no longer claims it; the fresh one does.
    assert attempt(first.pk, lease_token=queued[0][1], now=later) == SKIPPED
    assert attempt(first.pk, lease_token=queued[1][1], now=later) == SUCCEEDED


def test_sweep_works_in_batches(endpoint, receiver, emit_ping):
    for n in range(7):
        emit_ping(str(n))
    batches = []
    assert deliveries_sweep(enqueue=batches.append, batch_size=3) == 7
    assert [len(batch) for batch in batches] == [3, 3, 1]


def test_an_endpoint_with_enough_attempts_in_flight_defers_the_next(
    settings, endpoint, receiver, emit_ping
):
    settings.WEBHOOKS_ENDPOINT_CONCURRENCY = 1
    [delivery] = emit_ping()
    assert slots.acquire(str(endpoint.pk), 1)
    try:
        assert attempt(delivery.pk) == DEFERRED
    finally:
        slots.release(str(endpoint.pk))
    delivery = refreshed(delivery)
    assert delivery.status == "pending" and delivery.attempts == 0
    assert delivery.lease_until is None and receiver.received == []
    assert attempt(delivery.pk, now=delivery.next_attempt_at) == SUCCEEDED


def test_manual_redelivery_of_a_failed_delivery(endpoint, receiver, emit_ping):
    [delivery] = emit_ping()
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=8)

    assert attempt(delivery.pk, trigger="manual") == SUCCEEDED
    delivery = refreshed(delivery)
    assert delivery.status == "succeeded" and delivery.attempts == 8
    assert DeliveryAttempt.objects.get().trigger == "manual"


def test_emit_delivers_on_commit_in_eager_mode(
    endpoint, receiver, emit_ping, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = emit_ping("eager")
    assert refreshed(delivery).status == Delivery.Status.SUCCEEDED
    assert receiver.received[0].verified[endpoint.secret]


def test_nudge_never_fails_the_caller_when_the_broker_is_down(
    monkeypatch, endpoint, emit_ping, django_capture_on_commit_callbacks
):
    import webhooks.tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(webhooks.tasks.deliver_batch, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = emit_ping()
    assert refreshed(delivery).status == Delivery.Status.PENDING


def test_request_headers_are_logged_and_the_body_is_compact_json(endpoint, receiver, emit_ping):
    [delivery] = emit_ping()
    attempt(delivery.pk)
    logged = DeliveryAttempt.objects.get()
    assert set(logged.request_headers) >= {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    }
    assert (
        receiver.received[0].body
        == json.dumps(refreshed(delivery).event.payload, separators=(",", ":")).encode()
    )


def test_a_batch_is_sent_at_once_and_each_delivery_recorded(make_endpoint, receiver, emit_ping):
    """Deliveries of a batch go out concurrently (HTTP threads, which never touch the
    database), each to its endpoint, and each is recorded."""
    from webhooks.delivery import attempt_many

    for _ in range(3):
        receiver.secrets.append(make_endpoint(receiver.url).secret)
    receiver.reply(Reply(status=500), Reply(delay=0.3), Reply(delay=0.3))
    deliveries = emit_ping("batch")

    outcomes = attempt_many([str(delivery.pk) for delivery in deliveries])

    assert sorted(outcomes.values()) == [RETRYING, SUCCEEDED, SUCCEEDED]
    assert DeliveryAttempt.objects.count() == 3
    assert all(any(item.verified.values()) for item in receiver.received)


@pytest.mark.django_db(transaction=True)
def test_a_slow_endpoint_in_a_batch_is_recorded_later_without_holding_the_task(
    monkeypatch, make_endpoint, receiver, emit_ping
):
    """Workers wait `straggler_seconds` for a batch; a request still hanging then is
    recorded by the recorder thread, so the task's thread moves on to the next message."""
    import time

    from webhooks.delivery import attempt_many

    monkeypatch.setattr("webhooks.services.nudge", lambda ids: None)
    for _ in range(2):
        receiver.secrets.append(make_endpoint(receiver.url).secret)
    receiver.reply(Reply(delay=1.0))  # the first request to arrive hangs for a second
    deliveries = emit_ping("straggler")

    started = time.monotonic()
    outcomes = attempt_many([str(d.pk) for d in deliveries], straggler_seconds=0.3)

    assert time.monotonic() - started < 0.9
    assert sorted(outcomes.values()) == [SKIPPED, SUCCEEDED]
    deadline = time.monotonic() + 5
    while Delivery.objects.filter(status="succeeded").count() < 2:
        assert time.monotonic() < deadline, "the straggler was never recorded"
        time.sleep(0.05)
    assert DeliveryAttempt.objects.count() == 2


def test_an_unexpected_error_is_a_recorded_failure_not_a_stuck_lease(endpoint, receiver, emit_ping):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_encrypted="not-a-token")
    [delivery] = emit_ping()

    assert attempt(delivery.pk) == RETRYING
    delivery = refreshed(delivery)
    assert delivery.lease_until is None and delivery.last_error == "internal_error: InvalidToken"
    assert receiver.received == []


def test_a_nul_character_in_a_response_does_not_stop_the_batch(make_endpoint, receiver, emit_ping):
    """PostgreSQL text refuses NUL: the body is stored with a replacement character, and the
    other deliveries of the batch are recorded and settled as usual."""
    from webhooks.delivery import attempt_many

    for _ in range(2):
        receiver.secrets.append(make_endpoint(receiver.url).secret)
    receiver.reply(Reply(status=200, body=b"ok\x00"), Reply(status=200, body=b"fine"))
    deliveries = emit_ping("nul")
    outcomes = attempt_many([str(delivery.pk) for delivery in deliveries])
    assert sorted(outcomes.values()) == [SUCCEEDED, SUCCEEDED]
    assert {refreshed(d).status for d in deliveries} == {Delivery.Status.SUCCEEDED}
    bodies = sorted(DeliveryAttempt.objects.values_list("response_body", flat=True))
    assert bodies == ["fine", "ok\ufffd"]


def test_a_result_arriving_after_the_lease_moved_on_is_not_recorded(endpoint, receiver, emit_ping):
    """A request slower than the lease: the delivery belongs to another worker by then, so
    the late result neither writes an attempt nor settles the delivery."""
    from webhooks.delivery import _claim, _record, _send

    [delivery] = emit_ping("slow")
    now = timezone.now()
    claimed, lease_until = _claim(
        [str(delivery.pk)], now=now, trigger="scheduled", lease_token=None
    )
    sent = [_send(item, now) for item in claimed]
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=now + timedelta(minutes=9))
    outcomes = _record(sent, lease_until, now=now, trigger="scheduled")
    assert outcomes == {str(delivery.pk): "lease_lost"}
    assert not DeliveryAttempt.objects.exists()
    assert refreshed(delivery).status == Delivery.Status.PENDING


def test_a_receiver_dripping_its_answer_is_cut_at_the_timeout(settings, make_endpoint, emit_ping):
    """urllib3 bounds each read; a receiver sending one byte every half second would never
    trip that. The whole request is cut at WEBHOOKS_TIMEOUT_SECONDS, so the thread and the
    delivery's lease are never held longer."""
    import socket
    import threading
    import time

    settings.WEBHOOKS_TIMEOUT_SECONDS = 1.5
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def drip() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
            if stop.is_set():
                break
            try:
                connection.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.5)
        connection.close()

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    make_endpoint(f"http://127.0.0.1:{server.getsockname()[1]}/hooks")
    [delivery] = emit_ping("drip")
    started = time.monotonic()
    outcome = attempt(delivery.pk)
    elapsed = time.monotonic() - started
    stop.set()
    server.close()
    assert outcome == RETRYING
    [logged] = DeliveryAttempt.objects.filter(delivery=delivery)
    assert logged.error.startswith("timeout")
    assert elapsed < 5  # cut at 1.5 s (plus the watchdog's tick), not after 50 s of drip


def test_the_attempts_of_a_manual_delivery_are_logged_as_manual(endpoint, receiver, emit_ping):
    [scheduled] = emit_ping("by the schedule")
    [manual] = emit_ping("asked for")
    Delivery.objects.filter(pk=manual.pk).update(manual=True)
    attempt(scheduled.pk)
    attempt(manual.pk)
    triggers = dict(DeliveryAttempt.objects.values_list("delivery_id", "trigger"))
    assert triggers == {scheduled.pk: "scheduled", manual.pk: "manual"}
