"""Event-loop lag: how late a timer wakes, the figure that says whether the loop is being starved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from edge.stats import RollingQuantiles

__all__ = ["watch_loop_lag", "watching_loop_lag"]


async def watch_loop_lag(lag: RollingQuantiles, *, interval_s: float = 0.05) -> None:
    """Sleep ``interval_s`` again and again, adding how late each wake-up was (seconds) to ``lag``.

    Runs until cancelled. A loop that something blocks (a frame fused on it, a blocking call) wakes
    late by as long as it was blocked; an idle loop wakes within a millisecond.
    """
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        lag.add(max(0.0, loop.time() - due))


@contextlib.asynccontextmanager
async def watching_loop_lag(lag: RollingQuantiles, *, interval_s: float = 0.05) -> AsyncIterator[None]:
    """Run ``watch_loop_lag`` for the duration of the block."""
    task = asyncio.create_task(watch_loop_lag(lag, interval_s=interval_s), name="loop-lag")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # not ``await task``: its CancelledError is not ours to raise
