"""Properties of secrets: the checksum catches any single-character typo; only hashes are stored."""

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from common.secrets import (
    BASE62,
    CHECKSUM_LENGTH,
    checksum,
    checksum_ok,
    hash_secret,
    make_secret,
    random_base62,
)

prefixes = st.from_regex(r"\Atg_[a-z]{1,8}_\Z")
lengths = st.integers(min_value=1, max_value=64)


@given(prefix=prefixes, length=lengths)
def test_every_made_secret_has_its_prefix_length_and_a_valid_checksum(prefix, length):
    secret = make_secret(prefix, length)
    assert secret.startswith(prefix)
    assert len(secret) == len(prefix) + length + CHECKSUM_LENGTH
    assert set(secret[len(prefix) :]) <= set(BASE62)
    assert checksum_ok(secret)


@given(prefix=prefixes, length=lengths, data=st.data())
def test_changing_any_single_character_fails_the_checksum(prefix, length, data):
    secret = make_secret(prefix, length)
    index = data.draw(st.integers(min_value=0, max_value=len(secret) - 1), label="index")
    replacement = data.draw(
        st.sampled_from(BASE62).filter(lambda char: char != secret[index]), label="replacement"
    )
    assert not checksum_ok(secret[:index] + replacement + secret[index + 1 :])


@given(body=st.text(min_size=1, max_size=100))
def test_checksum_is_six_base62_characters(body):
    value = checksum(body)
    assert len(value) == CHECKSUM_LENGTH
    assert set(value) <= set(BASE62)
    assert checksum_ok(body + value)


@given(text=st.text(max_size=CHECKSUM_LENGTH))
def test_too_short_text_never_passes_the_checksum(text):
    assert not checksum_ok(text)


@given(secret=st.text())
def test_hash_is_the_sha256_hex_digest(secret):
    assert hash_secret(secret) == hashlib.sha256(secret.encode()).hexdigest()


@given(length=st.integers(min_value=0, max_value=200))
def test_random_base62_has_the_requested_length_and_alphabet(length):
    value = random_base62(length)
    assert len(value) == length
    assert set(value) <= set(BASE62)


def test_random_secrets_do_not_repeat():
    assert len({make_secret("tg_x_", 32) for _ in range(1000)}) == 1000
