"""The gate's key cache: no query for a known key; rotation and revocation seen at once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.redis import get_redis
from keys import services
from keys.keycache import KeyCache, publish_key_change
from keys.models import ApiKey
from portal.audit import Actor
from tests.factories import ApiKeyFactory

SYSTEM = Actor.system("test")


@pytest.fixture
def cache(db):
    # check_interval=0: look at the epoch on every call, so tests need no sleeping.
    return KeyCache(get_redis(), check_interval=0)


def test_a_known_key_is_served_without_a_query(cache, django_assert_num_queries):
    key = ApiKeyFactory()
    first = cache.get(key.raw_key)
    assert first.id == str(key.id) and first.scopes == ("read",)
    with django_assert_num_queries(0):
        assert cache.get(key.raw_key) == first


def test_an_unknown_key_is_remembered_briefly(cache, django_assert_num_queries):
    key = ApiKeyFactory()
    ApiKey.objects.filter(pk=key.pk).delete()
    assert cache.get(key.raw_key) is None
    with django_assert_num_queries(0):
        assert cache.get(key.raw_key) is None


def test_revocation_reaches_a_warm_cache(cache, django_capture_on_commit_callbacks):
    key = ApiKeyFactory()
    assert cache.get(key.raw_key).status_at(timezone.now()) == "active"
    with django_capture_on_commit_callbacks(execute=True):
        services.key_revoke(actor=SYSTEM, key=key)
    assert cache.get(key.raw_key).status_at(timezone.now()) == "revoked"


def test_rotation_reaches_a_warm_cache_and_the_grace_period_ends_by_the_clock(
    cache, django_capture_on_commit_callbacks
):
    key = ApiKeyFactory()
    cache.get(key.raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        _new, raw = services.key_rotate(actor=SYSTEM, key=key, grace_period_seconds=60)
    old = cache.get(key.raw_key)
    now = timezone.now()
    assert old.status_at(now) == "rotating"
    assert old.status_at(now + timedelta(seconds=61)) == "expired"
    assert cache.get(raw).status_at(now) == "active"


def test_a_change_to_one_key_leaves_the_others_cached(cache, django_assert_num_queries):
    first, second = ApiKeyFactory(), ApiKeyFactory()
    cache.get(first.raw_key)
    cache.get(second.raw_key)
    publish_key_change(get_redis(), first.key_hash)
    with django_assert_num_queries(0):
        cache.get(second.raw_key)
    with django_assert_num_queries(1):
        cache.get(first.raw_key)


def test_a_cache_further_behind_than_the_log_starts_afresh(cache, django_assert_num_queries):
    key = ApiKeyFactory()
    cache.get(key.raw_key)
    client = get_redis()
    publish_key_change(client, "some-other-key")
    client.delete("tg:{keys}:changes")  # as if trimmed: the change this cache needs is gone
    publish_key_change(client, "yet-another-key")
    with django_assert_num_queries(1):  # it cannot know what changed, so it reloads
        cache.get(key.raw_key)


def test_a_flushed_redis_clears_the_cache(cache, django_assert_num_queries):
    key = ApiKeyFactory()
    client = get_redis()
    publish_key_change(client, "before")
    cache.get(key.raw_key)
    client.delete("tg:{keys}:epoch", "tg:{keys}:changes")  # what FLUSHALL does to them
    with django_assert_num_queries(1):
        cache.get(key.raw_key)
