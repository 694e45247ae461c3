"""The one retry policy: capped exponential backoff with ±25 % jitter, reset after a success.

Used by the source supervisor (``edge.app``: one ``Backoff`` per source, reopening it after a failure)
and by the MQTT publisher's reconnect loop. Drivers never retry on their own: a lost link raises
``SourceUnavailableError(reason=DISCONNECTED)`` out of ``samples()`` and the supervisor reopens it, so
there is one layer, one jitter rule and one counter (``restarts``) per source.

Delay n (from 0) is ``min(initial_s * 2**n, max_s) * U(0.75, 1.25)``: the jitter is ±25 % around the
capped base, so many sources (or many devices on one broker) do not retry in lockstep, while the wait
never falls below three quarters of the base nor exceeds ``1.25 * max_s``.
"""

from __future__ import annotations

import random

__all__ = ["JITTER", "Backoff"]

JITTER = 0.25  # each delay is the base times U(1 - JITTER, 1 + JITTER)


class Backoff:
    """Capped exponential backoff with ±25 % jitter, reset after a success.

    Args:
        initial_s: the first base delay; it doubles after each failure (lowered to ``max_s`` if above it).
        max_s: the largest base delay (the jittered wait may exceed it by 25 %).
        rng: the jitter's random source; injectable for tests.

    Raises:
        ValueError: a delay that is not positive.
    """

    def __init__(self, initial_s: float = 1.0, max_s: float = 30.0, rng: random.Random | None = None) -> None:
        if initial_s <= 0 or max_s <= 0:
            raise ValueError(f"backoff delays must be positive, got {initial_s}, {max_s}")
        initial_s = min(initial_s, max_s)  # a small configured cap wins over the default start
        self.initial_s = initial_s
        self.max_s = max_s
        self._next_s = initial_s
        self._rng = rng or random.Random()

    def reset(self) -> None:
        """Start again from ``initial_s`` (call after a success)."""
        self._next_s = self.initial_s

    def exhaust(self) -> None:
        """Jump to ``max_s``: for a failure that retrying soon will not fix (refused credentials, a missing file)."""
        self._next_s = self.max_s

    def next_delay(self) -> float:
        """The wait before the next attempt, in seconds; advances the schedule."""
        delay = self._next_s * self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay
