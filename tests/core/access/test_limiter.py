"""The lockout after repeated failed authentications from one address."""

from __future__ import annotations

import pytest

from modelswap.core.access.limiter import FailureLimiter
from modelswap.core.errors import TooManyAttempts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_th_failure_in_a_window_blocks_the_address_for_the_block_time() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, block=60, clock=clock)
    assert [limiter.failed("10.0.0.7") for _ in range(2)] == [False, False]
    limiter.check("10.0.0.7")
    assert limiter.failed("10.0.0.7") is True
    with pytest.raises(TooManyAttempts) as caught:
        limiter.check("10.0.0.7")
    assert caught.value.retry_after == 60 and "retry in 60 s" in caught.value.message
    limiter.check("10.0.0.8")  # another address is not touched
    clock.now += 59.5
    with pytest.raises(TooManyAttempts) as caught:
        limiter.check("10.0.0.7")
    assert caught.value.retry_after == 1
    clock.now += 1
    limiter.check("10.0.0.7")  # the block is over, and the count starts again
    assert limiter.failed("10.0.0.7") is False


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, block=60, clock=clock)
    limiter.failed("a")
    limiter.failed("a")
    clock.now += 61
    assert limiter.failed("a") is False  # the first two fell out of the window
    limiter.check("a")
