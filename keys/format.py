"""The API key format: `tg_<environment>_<32+ base62><6-char checksum>`.

The environment is in the key so a test key is recognisable at a glance and by secret
scanners; the checksum lets the gate reject a mistyped key without any lookup.
"""

import re

from common.secrets import checksum_ok, hash_secret, make_secret

ENVIRONMENTS = ("test", "live")
RANDOM_LENGTH = 32
VISIBLE_RANDOM_CHARS = 8
KEY_PATTERN = re.compile(r"^tg_(test|live)_[0-9A-Za-z]{38,}$")


def key_generate(environment: str) -> str:
    return make_secret(f"tg_{environment}_", RANDOM_LENGTH)


def key_is_well_formed(raw_key: str) -> bool:
    """Pattern and checksum only: microseconds, no I/O."""
    return bool(KEY_PATTERN.match(raw_key)) and checksum_ok(raw_key)


def key_environment(raw_key: str) -> str:
    return raw_key.split("_", 2)[1]


def key_prefix(raw_key: str) -> str:
    """The part shown in lists: `tg_test_` plus the first random characters."""
    head = raw_key.index("_", 3) + 1
    return raw_key[: head + VISIBLE_RANDOM_CHARS]


def key_hash(raw_key: str) -> str:
    return hash_secret(raw_key)
