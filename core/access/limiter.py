"""Failed authentications per client address: after ``limit`` in ``window`` seconds, the
address is refused (TooManyAttempts, with the seconds to wait) for ``block`` seconds, a
right token or not, so guessing gains nothing from the answers.

Counted in each serving process on its own (a pod's workers do not share counts): an
address spread over N processes gets up to N x ``limit`` tries a minute. The address is
the one uvicorn reports: behind a proxy, run it with ``--forwarded-allow-ips`` so that
it is the client's, not the proxy's (else one client locks out everyone behind it)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from modelswap.core.errors import TooManyAttempts

MAX_ADDRESSES = 10_000  # addresses tracked at once; the oldest are forgotten first


class FailureLimiter:
    def __init__(
        self,
        *,
        limit: int = 20,
        window: float = 60.0,
        block: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.block = limit, window, block
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}

    def check(self, address: str) -> None:
        """TooManyAttempts while ``address`` is blocked."""
        until = self._blocked.get(address)
        if until is None:
            return
        left = until - self._clock()
        if left <= 0:
            with self._lock:
                self._blocked.pop(address, None)
            return
        raise TooManyAttempts(
            f"too many failed authentications from {address}: retry in {math.ceil(left)} s", math.ceil(left)
        )

    def failed(self, address: str) -> bool:
        """Count one failure; True when it blocks the address."""
        now = self._clock()
        with self._lock:
            times = self._failures.get(address)
            if times is None:
                if len(self._failures) >= MAX_ADDRESSES:
                    self._failures.pop(next(iter(self._failures)))
                times = self._failures[address] = deque()
            times.append(now)
            while times and now - times[0] > self.window:
                times.popleft()
            if len(times) < self.limit:
                return False
            del self._failures[address]
            if len(self._blocked) >= MAX_ADDRESSES:
                self._blocked.pop(next(iter(self._blocked)))
            self._blocked[address] = now + self.block
            return True
