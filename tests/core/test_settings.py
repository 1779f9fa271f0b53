"""Settings.from_env: defaults, and a clear error naming the variable for a bad value."""

from __future__ import annotations

import pytest

from modelswap.core.errors import InvalidInput
from modelswap.core.settings import Settings


def test_connection_settings_default_to_what_the_docs_say() -> None:
    s = Settings.from_env({})
    assert (s.header_timeout, s.body_timeout, s.keepalive_timeout, s.max_connections) == (10.0, 30.0, 5.0, 1000)


def test_connection_settings_are_read_from_the_environment() -> None:
    env = {
        "MODELSWAP_HEADER_TIMEOUT": "2.5",
        "MODELSWAP_BODY_TIMEOUT": "7",
        "MODELSWAP_KEEPALIVE_TIMEOUT": "0.5",
        "MODELSWAP_MAX_CONNECTIONS": "64",
    }
    s = Settings.from_env(env)
    assert (s.header_timeout, s.body_timeout, s.keepalive_timeout, s.max_connections) == (2.5, 7.0, 0.5, 64)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MODELSWAP_HEADER_TIMEOUT", "soon", "is not a number"),
        ("MODELSWAP_HEADER_TIMEOUT", "0", "must be at least 0.1"),
        ("MODELSWAP_BODY_TIMEOUT", "-1", "must be at least 0.1"),
        ("MODELSWAP_KEEPALIVE_TIMEOUT", "nan", "must be at least 0.1"),
        ("MODELSWAP_MAX_CONNECTIONS", "0", "must be at least 1"),
        ("MODELSWAP_MAX_CONNECTIONS", "2.5", "must be a whole number"),
        ("MODELSWAP_MAX_CONNECTIONS", "inf", "must be a whole number"),
    ],
)
def test_a_bad_connection_setting_is_an_error_naming_it(name: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as error:
        Settings.from_env({name: value})
    assert name in str(error.value)


def test_batching_settings_default_to_what_the_docs_say_and_are_read_from_the_environment() -> None:
    s = Settings.from_env({})
    assert (s.batch_hand_off_ms, s.batch_inline_ms) == (2.0, 1.0)  # on the loop once proven within 1 ms
    s = Settings.from_env({"MODELSWAP_BATCH_HANDOFF_MS": "0", "MODELSWAP_BATCH_INLINE_MS": "1.5"})
    assert (s.batch_hand_off_ms, s.batch_inline_ms) == (0.0, 1.5)
    with pytest.raises(InvalidInput, match="MODELSWAP_BATCH_INLINE_MS"):
        Settings.from_env({"MODELSWAP_BATCH_INLINE_MS": "-1"})


def test_model_threads_default_to_one_and_must_be_a_whole_number() -> None:
    assert Settings.from_env({}).model_threads == 1
    assert Settings.from_env({"MODELSWAP_MODEL_THREADS": "4"}).model_threads == 4
    for bad in ("0", "1.5", "many"):
        with pytest.raises(InvalidInput, match="MODELSWAP_MODEL_THREADS"):
            Settings.from_env({"MODELSWAP_MODEL_THREADS": bad})
