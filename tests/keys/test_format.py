"""Key format properties: every generated key is well formed, every one-character typo is not."""

import re

from hypothesis import given
from hypothesis import strategies as st

from common.secrets import BASE62, CHECKSUM_LENGTH
from keys.format import (
    ENVIRONMENTS,
    RANDOM_LENGTH,
    key_environment,
    key_generate,
    key_hash,
    key_is_well_formed,
    key_prefix,
)

environments = st.sampled_from(ENVIRONMENTS)


@given(environment=environments)
def test_every_generated_key_is_well_formed(environment):
    raw = key_generate(environment)
    assert key_is_well_formed(raw)
    assert re.fullmatch(rf"tg_{environment}_[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}", raw)
    assert key_environment(raw) == environment


@given(environment=environments, data=st.data())
def test_changing_any_single_character_makes_a_key_malformed(environment, data):
    raw = key_generate(environment)
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="index")
    # An offset, not a filtered character: the key is random, and what Hypothesis draws
    # must not depend on it (a filter on raw[index] made the strategy flaky).
    offset = data.draw(st.integers(min_value=1, max_value=len(BASE62) - 1), label="offset")
    position = BASE62.find(raw[index])
    replacement = BASE62[(max(position, 0) + offset) % len(BASE62)]
    typo = raw[:index] + replacement + raw[index + 1 :]
    assert not key_is_well_formed(typo)


@given(environment=environments, data=st.data())
def test_dropping_or_adding_a_character_makes_a_key_malformed(environment, data):
    raw = key_generate(environment)
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="index")
    extra = data.draw(st.sampled_from(BASE62), label="extra")
    assert not key_is_well_formed(raw[:index] + raw[index + 1 :])
    assert not key_is_well_formed(raw[:index] + extra + raw[index:])


@given(environment=environments)
def test_prefix_is_the_environment_and_eight_random_characters(environment):
    raw = key_generate(environment)
    prefix = key_prefix(raw)
    assert prefix == raw[: len(f"tg_{environment}_") + 8]
    assert raw.startswith(prefix)


@given(text=st.text(max_size=80))
def test_arbitrary_text_is_not_a_key(text):
    assert not key_is_well_formed(text)


def test_keys_are_unique_and_hashes_differ():
    keys = {key_generate("test") for _ in range(1000)}
    assert len(keys) == 1000
    assert len({key_hash(raw) for raw in keys}) == 1000


def test_key_for_an_unknown_environment_is_not_well_formed():
    assert not key_is_well_formed(key_generate("prod"))
