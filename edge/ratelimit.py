"""Log a recurring fault once per kind per interval, with the count of those not logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """``warn(kind, msg)`` logs the first occurrence of ``kind`` and then at most once per interval.

    Args:
        logger: where lines go.
        interval_s: the shortest time between two lines of one kind (default one minute).
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self, logger: logging.Logger, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, kind: str, message: str, *, exc_info: bool = False) -> bool:
        """Log ``message`` for ``kind`` unless one was logged within the interval; True if logged."""
        now = self._clock()
        last = self._last_logged.get(kind)
        if last is not None and now - last < self._interval_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        skipped = self._suppressed.pop(kind, 0)
        suffix = f" ({skipped} more of this kind in the last {self._interval_s:.0f} s)" if skipped else ""
        self._logger.warning("%s: %s%s", kind, message, suffix, exc_info=exc_info)
        self._last_logged[kind] = now
        return True
